using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;

namespace Platform.Rewards.Webhooks;

/// <summary>The events an account's webhook is sent, and how one is queued for it.</summary>
public static class WebhookEvents
{
    /// <summary>The account's balance fell below its low-balance threshold (AccountBalanceLow).</summary>
    public const string BalanceLow = "account.balance_low";

    /// <summary>Sent on request (POST /v1/account/webhook/test), to check the receiver and its signature check.</summary>
    public const string Test = "webhook.test";

    private sealed record Event(string Type, DateTimeOffset Timestamp, object Data);

    /// <summary>The body, Standard Webhooks' shape: <c>{"type", "timestamp", "data"}</c>.</summary>
    public static string Body(string type, DateTimeOffset timestamp, object data) => JsonSerializer.Serialize(new Event(type, timestamp, data), PlatformJson.Options);

    /// <summary>
    /// Queues the event for the account's webhook, if it has one; <paramref name="messageId"/> makes it one delivery
    /// however often it is queued. True when it was queued now. The webhook row is share-locked: a removal waits for the
    /// queued delivery and drops it with the rest, never leaving one pending without a webhook.
    /// </summary>
    public static async Task<bool> QueueAsync(NpgsqlConnection connection, Guid messageId, string account, string type, string body, CancellationToken ct) =>
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into webhook_deliveries (message_id, account_id, event_type, body)
            select @messageId, account_id, @type, @body from webhooks where account_id = @account for share
            on conflict (message_id) do nothing
            """,
            new { messageId, account, type, body }, cancellationToken: ct)) > 0;
}
