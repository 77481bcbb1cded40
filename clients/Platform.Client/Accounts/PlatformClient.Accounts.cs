using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using Platform.Contracts.Api;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    [ApiOperation("GET /v1/account")]
    public Task<AccountResponse> GetAccountAsync(CancellationToken ct = default) => GetAsync<AccountResponse>("v1/account", ct);

    /// <summary>One page of the account's ledger, newest first; pass <see cref="LedgerPage.NextCursor"/> on for the next.</summary>
    [ApiOperation("GET /v1/account/ledger")]
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
    [ApiOperation("GET /v1/account/earnings")]
    public Task<EarningsResponse> GetEarningsAsync(CancellationToken ct = default) => GetAsync<EarningsResponse>("v1/account/earnings", ct);

    /// <summary>What the client spent per day: jobs (escrowed less refunded) and pinning fees. Clients and admins.</summary>
    [ApiOperation("GET /v1/account/spending")]
    public Task<SpendingResponse> GetSpendingAsync(CancellationToken ct = default) => GetAsync<SpendingResponse>("v1/account/spending", ct);

    /// <summary>Moves <paramref name="amount"/> credits from the balance into the operator's stake; answers the balance and stake after it.</summary>
    [ApiOperation("POST /v1/account/stake", Body = typeof(StakeRequest))]
    public Task<StakeResponse> StakeAsync(decimal amount, string? idempotencyKey = null, CancellationToken ct = default) =>
        PostAsync<StakeResponse>("v1/account/stake", new StakeRequest(amount), ct, idempotencyKey);

    /// <summary>Moves <paramref name="amount"/> credits from the operator's stake back to the balance.</summary>
    [ApiOperation("POST /v1/account/unstake", Body = typeof(StakeRequest))]
    public Task<StakeResponse> UnstakeAsync(decimal amount, string? idempotencyKey = null, CancellationToken ct = default) =>
        PostAsync<StakeResponse>("v1/account/unstake", new StakeRequest(amount), ct, idempotencyKey);

    /// <summary>
    /// PUT /v1/account/low-balance: warn (dashboard banner, CLI, an AccountBalanceLow event) when the balance falls
    /// below <paramref name="threshold"/> credits; null clears it. Clients and admins. Returns the account.
    /// </summary>
    [ApiOperation("PUT /v1/account/low-balance", Body = typeof(LowBalanceRequest))]
    public async Task<AccountResponse> SetLowBalanceThresholdAsync(decimal? threshold, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri("v1/account/low-balance", UriKind.Relative))
        {
            Content = JsonContent.Create(new LowBalanceRequest(threshold), options: Json),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync<AccountResponse>(response, ct);
    }

    /// <summary>
    /// Operators only: a node key, which enrolls one node under this operator and fetches and pins blobs, and can do
    /// nothing else. Give a node this, never the operator's own key. It enrolls the first <paramref name="workers"/>
    /// worker ids it is used with (1: one node; more only for replicas sharing one key) and no other.
    /// </summary>
    [ApiOperation("POST /v1/account/node-keys", Body = typeof(CreateNodeKeyRequest))]
    public async Task<NodeKeyCreated> CreateNodeKeyAsync(int workers = 1, CancellationToken ct = default)
    {
        using var response = await PostAsync("v1/account/node-keys", new CreateNodeKeyRequest(workers), null, ct);
        return await ReadAsync<NodeKeyCreated>(response, ct);
    }

    /// <summary>Operators only: the operator's node keys (never the keys themselves).</summary>
    [ApiOperation("GET /v1/account/node-keys")]
    public Task<List<NodeKeyView>> ListNodeKeysAsync(CancellationToken ct = default) => GetAsync<List<NodeKeyView>>("v1/account/node-keys", ct);

    /// <summary>Operators only: revokes a node key; its node can no longer fetch, pin or enroll.</summary>
    [ApiOperation("DELETE /v1/account/node-keys/{id}")]
    public async Task RevokeNodeKeyAsync(string id, CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri($"v1/account/node-keys/{Uri.EscapeDataString(id)}", UriKind.Relative), ct);
        await EnsureSuccessAsync(response, ct);
    }

    /// <summary>
    /// Sends the account's events (a low balance) to <paramref name="url"/>, signed as Standard Webhooks describes.
    /// The answer holds the signing secret, this once; setting the URL again makes a new secret. Clients and admins.
    /// </summary>
    [ApiOperation("PUT /v1/account/webhook", Body = typeof(WebhookRequest))]
    public async Task<WebhookView> SetWebhookAsync(string url, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri("v1/account/webhook", UriKind.Relative))
        {
            Content = JsonContent.Create(new WebhookRequest(url), options: Json),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync<WebhookView>(response, ct);
    }

    /// <summary>The account's webhook and its recent deliveries (a 404 problem webhook-not-set when there is none).</summary>
    [ApiOperation("GET /v1/account/webhook")]
    public Task<WebhookView> GetWebhookAsync(CancellationToken ct = default) =>
        GetAsync<WebhookView>("v1/account/webhook", ct);

    /// <summary>Removes the account's webhook; events not yet delivered are dropped.</summary>
    [ApiOperation("DELETE /v1/account/webhook")]
    public async Task DeleteWebhookAsync(CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri("v1/account/webhook", UriKind.Relative), ct);
        await EnsureSuccessAsync(response, ct);
    }

    /// <summary>Sends the webhook a <c>webhook.test</c> event; its delivery shows in <see cref="GetWebhookAsync"/>.</summary>
    [ApiOperation("POST /v1/account/webhook/test")]
    public Task<WebhookDelivery> TestWebhookAsync(CancellationToken ct = default) =>
        PostAsync<WebhookDelivery>("v1/account/webhook/test", new { }, ct);

    /// <summary>Admin only: opens an account with <see cref="CreateAccountRequest.Credits"/> and returns its key.</summary>
    [ApiOperation("POST /v1/admin/accounts")]
    public Task<CreateAccountResponse> CreateAccountAsync(CreateAccountRequest request, CancellationToken ct = default) =>
        PostAsync<CreateAccountResponse>("v1/admin/accounts", request, ct);
}
