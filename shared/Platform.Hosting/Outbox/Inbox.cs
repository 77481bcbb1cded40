using Dapper;
using Npgsql;

namespace Platform.Hosting.Outbox;

/// <summary>Deduplication for consumers whose effect is not idempotent by construction.</summary>
public static class Inbox
{
    /// <summary>Records the message in the caller's transaction; false when this consumer already processed it.</summary>
    public static async Task<bool> TryRecordAsync(NpgsqlTransaction transaction, string consumer, Guid? messageId, CancellationToken ct = default)
    {
        if (messageId is null)
            return true;
        var inserted = await transaction.Connection!.ExecuteAsync(new CommandDefinition(
            "insert into inbox (consumer, message_id) values (@consumer, @messageId) on conflict do nothing",
            new { consumer, messageId }, transaction, cancellationToken: ct));
        return inserted == 1;
    }
}
