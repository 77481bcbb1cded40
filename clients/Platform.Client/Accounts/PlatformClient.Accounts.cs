using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    public Task<AccountView> GetAccountAsync(CancellationToken ct = default) => GetAsync<AccountView>("v1/account", ct);

    /// <summary>One page of the account's ledger, newest first; pass <see cref="LedgerPage.NextCursor"/> on for the next.</summary>
    public Task<LedgerPage> GetLedgerPageAsync(string? cursor = null, int? limit = null, CancellationToken ct = default) =>
        GetAsync<LedgerPage>("v1/account/ledger" + Query(("cursor", cursor), ("limit", limit?.ToString(CultureInfo.InvariantCulture))), ct);

    /// <summary>Every ledger entry of the account, fetched a page at a time as the caller reads on.</summary>
    public async IAsyncEnumerable<LedgerEntry> ListLedgerAsync(int pageSize = 100, [EnumeratorCancellation] CancellationToken ct = default)
    {
        string? cursor = null;
        do
        {
            var page = await GetLedgerPageAsync(cursor, pageSize, ct);
            foreach (var entry in page.Entries)
                yield return entry;
            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>What the operator's nodes earned, per worker and per day.</summary>
    public Task<Earnings> GetEarningsAsync(CancellationToken ct = default) => GetAsync<Earnings>("v1/account/earnings", ct);

    /// <summary>Moves <paramref name="amount"/> credits from the balance into the operator's stake.</summary>
    public Task StakeAsync(decimal amount, string? idempotencyKey = null, CancellationToken ct = default) =>
        SendAmountAsync("v1/account/stake", amount, idempotencyKey, ct);

    /// <summary>Moves <paramref name="amount"/> credits from the operator's stake back to the balance.</summary>
    public Task UnstakeAsync(decimal amount, string? idempotencyKey = null, CancellationToken ct = default) =>
        SendAmountAsync("v1/account/unstake", amount, idempotencyKey, ct);

    private async Task SendAmountAsync(string path, decimal amount, string? idempotencyKey, CancellationToken ct)
    {
        using var response = await PostAsync(path, new { amount }, idempotencyKey, ct);
        await EnsureSuccessAsync(response, ct);
    }

    /// <summary>
    /// PUT /v1/account/low-balance: warn (dashboard banner, CLI, an AccountBalanceLow event) when the balance falls
    /// below <paramref name="threshold"/> credits; null clears it. Clients and admins. Returns the account.
    /// </summary>
    public async Task<AccountView> SetLowBalanceThresholdAsync(decimal? threshold, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri("v1/account/low-balance", UriKind.Relative))
        {
            Content = JsonContent.Create(new { threshold }, options: Json),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync<AccountView>(response, ct);
    }

    /// <summary>
    /// Operators only: a node key, which enrolls one node under this operator and fetches and pins blobs, and can do
    /// nothing else. Give a node this, never the operator's own key. It enrolls the first <paramref name="workers"/>
    /// worker ids it is used with (1: one node; more only for replicas sharing one key) and no other.
    /// </summary>
    public async Task<CreatedNodeKey> CreateNodeKeyAsync(int workers = 1, CancellationToken ct = default)
    {
        using var response = await PostAsync("v1/account/node-keys", new { workers }, null, ct);
        return await ReadAsync<CreatedNodeKey>(response, ct);
    }

    /// <summary>Operators only: the operator's node keys (never the keys themselves).</summary>
    public Task<List<NodeKeyInfo>> ListNodeKeysAsync(CancellationToken ct = default) => GetAsync<List<NodeKeyInfo>>("v1/account/node-keys", ct);

    /// <summary>Operators only: revokes a node key; its node can no longer fetch, pin or enroll.</summary>
    public async Task RevokeNodeKeyAsync(string id, CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri($"v1/account/node-keys/{Uri.EscapeDataString(id)}", UriKind.Relative), ct);
        await EnsureSuccessAsync(response, ct);
    }

    /// <summary>
    /// Sends the account's events (a low balance) to <paramref name="url"/>, signed as Standard Webhooks describes.
    /// The answer holds the signing secret, this once; setting the URL again makes a new secret. Clients and admins.
    /// </summary>
    public async Task<Platform.Contracts.Api.WebhookView> SetWebhookAsync(string url, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri("v1/account/webhook", UriKind.Relative))
        {
            Content = JsonContent.Create(new Platform.Contracts.Api.WebhookRequest(url), options: Json),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync<Platform.Contracts.Api.WebhookView>(response, ct);
    }

    /// <summary>The account's webhook and its recent deliveries (a 404 problem webhook-not-set when there is none).</summary>
    public Task<Platform.Contracts.Api.WebhookView> GetWebhookAsync(CancellationToken ct = default) =>
        GetAsync<Platform.Contracts.Api.WebhookView>("v1/account/webhook", ct);

    /// <summary>Removes the account's webhook; events not yet delivered are dropped.</summary>
    public async Task DeleteWebhookAsync(CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri("v1/account/webhook", UriKind.Relative), ct);
        await EnsureSuccessAsync(response, ct);
    }

    /// <summary>Sends the webhook a <c>webhook.test</c> event; its delivery shows in <see cref="GetWebhookAsync"/>.</summary>
    public Task<Platform.Contracts.Api.WebhookDelivery> TestWebhookAsync(CancellationToken ct = default) =>
        PostAsync<Platform.Contracts.Api.WebhookDelivery>("v1/account/webhook/test", new { }, ct);

    /// <summary>Admin only: opens an account with <see cref="CreateAccountRequest.Credits"/> and returns its key.</summary>
    public Task<CreatedAccount> CreateAccountAsync(CreateAccountRequest request, CancellationToken ct = default) =>
        PostAsync<CreatedAccount>("v1/admin/accounts", request, ct);
}
