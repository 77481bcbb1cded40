using System.Runtime.ExceptionServices;
using Npgsql;

namespace Platform.Hosting.Outbox;

/// <summary>
/// Handles a batch of messages (a MassTransit batch consumer's) in one transaction and one commit, each message by
/// the same code that handles one: a commit, not the statements, is most of what a small message costs the database,
/// and messages of one transaction do not wait on each other's row locks. When any message fails, the batch's
/// transaction is rolled back and every message is handled again in a transaction of its own, so the others still
/// take effect and only the failing one's error is rethrown (MassTransit then retries the batch: handlers are
/// idempotent, so the messages that took effect change nothing the second time). A batch of one is the single-message
/// case: one transaction, no fallback.
/// </summary>
public static class GroupCommit
{
    /// <summary>What became of a batch: how many transactions committed it, and whether it fell back to one per message.</summary>
    public readonly record struct Outcome(int Commits, bool FellBack);

    public static async Task<Outcome> HandleAsync<T>(NpgsqlDataSource db, MessageOutbox outbox, IReadOnlyList<T> messages,
        Func<NpgsqlTransaction, T, Task> handle, CancellationToken ct)
    {
        if (messages.Count == 0)
            return new(0, false);
        try
        {
            await InOneTransactionAsync(db, outbox, messages, handle, ct);
            return new(1, false);
        }
        catch (Exception) when (messages.Count > 1 && !ct.IsCancellationRequested)
        {
            // One message's failure (or a deadlock with another transaction) must not hold back the rest.
        }
        var failures = new List<Exception>();
        foreach (var message in messages)
        {
            try
            {
                await InOneTransactionAsync(db, outbox, [message], handle, ct);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                failures.Add(ex);
            }
        }
        if (failures.Count == 1)
            ExceptionDispatchInfo.Throw(failures[0]);
        if (failures.Count > 1)
            throw new AggregateException($"{failures.Count} of {messages.Count} messages of the batch failed", failures);
        return new(messages.Count, true);
    }

    private static async Task InOneTransactionAsync<T>(NpgsqlDataSource db, MessageOutbox outbox, IReadOnlyList<T> messages,
        Func<NpgsqlTransaction, T, Task> handle, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        foreach (var message in messages)
            await handle(tx, message);
        await outbox.CommitAsync(tx, ct);
    }
}
