using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Webhooks;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Rewards.Tests.Webhooks;

/// <summary>
/// AccountBalanceLow reaching the account's webhook: queued once per event (a redelivery is not a second delivery),
/// signed, retried with backoff while the receiver fails, given up after the last attempt. Real Postgres and RabbitMQ,
/// a real HTTP receiver on this machine (private addresses allowed, as only a test may).
/// </summary>
public sealed class WebhookDeliveryTests(ITestOutputHelper output) : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-webhooks", services =>
    {
        services.AddWebhookSender();
        services.Configure<WebhookOptions>(o =>
        {
            o.AllowPrivateAddresses = true;
            o.FirstRetryAfter = TimeSpan.FromMilliseconds(200);
            o.PollInterval = TimeSpan.FromMilliseconds(100);
            o.MaxAttempts = 3;
        });
    }, bus => bus.AddWebhooks());

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    private async Task<string> SetWebhookAsync(AccountId account, string url)
    {
        var secret = WebhookSignature.NewSecret();
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        await connection.ExecuteAsync("insert into webhooks (account_id, url, secret) values (@account, @url, @secret)", new { account = account.Value, url, secret });
        return secret;
    }

    private async Task<(string Status, int Attempts, int? LastStatus, string? LastError)> DeliveryAsync(AccountId account)
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        return await connection.QuerySingleAsync<(string, int, int?, string?)>(
            "select status, attempts, last_status, last_error from webhook_deliveries where account_id = @account", new { account = account.Value });
    }

    [Fact]
    public async Task A_low_balance_warning_redelivered_reaches_the_webhook_once_signed_after_two_failed_attempts()
    {
        await using var receiver = new WebhookReceiver(500, 500);
        var client = await _rewards.OpenAsync("client", 3m);
        var secret = await SetWebhookAsync(client, receiver.Url);
        var warning = new AccountBalanceLow { AccountId = client, Balance = 3m, Threshold = 10m, OccurredAt = DateTimeOffset.UtcNow };
        var messageId = NewId.NextGuid();

        // The same event twice, as a redelivery brings it.
        await _rewards.Harness.Bus.Publish(warning, c => c.MessageId = messageId);
        await _rewards.Harness.Bus.Publish(warning, c => c.MessageId = messageId);
        await _rewards.Consumers.Consumes.HandledAsync<AccountBalanceLow>(c => c.MessageId == messageId, count: 2);

        var delivered = await Eventually.UntilAsync(() => DeliveryAsync(client), d => d.Status != "pending", TimeSpan.FromSeconds(30), "the warning delivered");
        Assert.Equal(("delivered", 3, 200, (string?)null), delivered);
        var requests = receiver.Requests.ToList();
        output.WriteLine(string.Join("\n", requests.Select(r => $"{r.Id} {r.Timestamp} {r.Signature}")));
        Assert.Equal(3, requests.Count);
        // One event: every attempt carries its id, and each is signed with the account's secret.
        Assert.Single(requests.Select(r => r.Id).Distinct());
        Assert.Equal($"msg_{messageId:N}", requests[0].Id);
        Assert.All(requests, r => Assert.True(r.SignedWith(secret), $"signature {r.Signature} of {r.Body}"));
        Assert.All(requests, r => Assert.False(r.SignedWith(WebhookSignature.NewSecret()), "a signature any secret verifies"));
        Assert.All(requests, r => Assert.InRange(r.Timestamp, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
        Assert.Equal("application/json", requests[0].ContentType.Split(';')[0]);
        var body = requests[^1].Json;
        Assert.Equal("account.balance_low", body.GetProperty("type").GetString());
        Assert.Equal(client.Value, body.GetProperty("data").GetProperty("accountId").GetString());
        Assert.Equal(3m, body.GetProperty("data").GetProperty("balance").GetDecimal());
        Assert.Equal(10m, body.GetProperty("data").GetProperty("threshold").GetDecimal());
    }

    [Fact]
    public async Task A_receiver_that_never_answers_2xx_is_given_up_after_the_last_attempt()
    {
        await using var receiver = new WebhookReceiver(503, 503, 503, 503, 503);
        var client = await _rewards.OpenAsync("client", 3m);
        await SetWebhookAsync(client, receiver.Url);

        await _rewards.Consumers.PublishHandledAsync(new AccountBalanceLow { AccountId = client, Balance = 3m, Threshold = 10m, OccurredAt = DateTimeOffset.UtcNow });

        var failed = await Eventually.UntilAsync(() => DeliveryAsync(client), d => d.Status != "pending", TimeSpan.FromSeconds(30), "the delivery given up");
        Assert.Equal(("failed", 3, 503, "the receiver answered 503"), failed);
        Assert.Equal(3, receiver.Requests.Count);
    }

    [Fact]
    public async Task A_receiver_that_keeps_failing_does_not_hold_up_another_accounts_delivery()
    {
        await using var failing = new WebhookReceiver(Enumerable.Repeat(503, 200).ToArray());
        await using var healthy = new WebhookReceiver();
        var (a, b) = (await _rewards.OpenAsync("client", 1m), await _rewards.OpenAsync("client", 1m));
        await SetWebhookAsync(a, failing.Url);
        await SetWebhookAsync(b, healthy.Url);
        // Forty of a's events are older than b's one, all queued at once: a batch that took the oldest sixteen would try
        // every one of a's before b's.
        await using (var connection = await _rewards.Database.OpenConnectionAsync())
        {
            await connection.ExecuteAsync(
                """
                insert into webhook_deliveries (message_id, account_id, event_type, body, next_attempt_at)
                select gen_random_uuid(), @a, 'webhook.test', '{}', now() - interval '1 hour' + n * interval '1 second' from generate_series(1, 40) n
                union all select gen_random_uuid(), @b, 'webhook.test', '{}', now() - interval '1 second'
                """, new { a = a.Value, b = b.Value });
        }

        var delivered = await Eventually.UntilAsync(() => Task.FromResult(healthy.Requests.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(30), "b's event delivered");
        var before = failing.Requests.Count(r => r.At < delivered[0].At);
        output.WriteLine($"a's attempts before b's delivery: {before} (a's 40 were all older)");
        Assert.True(before < 16, $"{before} of a's attempts came before b's delivery: b's waited behind them");
    }

    [Fact]
    public async Task An_account_without_a_webhook_queues_nothing()
    {
        var client = await _rewards.OpenAsync("client", 3m);

        await _rewards.Consumers.PublishHandledAsync(new AccountBalanceLow { AccountId = client, Balance = 3m, Threshold = 10m, OccurredAt = DateTimeOffset.UtcNow });

        await using var connection = await _rewards.Database.OpenConnectionAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("select count(*) from webhook_deliveries"));
    }
}
