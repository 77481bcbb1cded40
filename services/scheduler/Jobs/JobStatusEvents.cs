using Dapper;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// A JobStatusChanged is numbered with the job's next status version, in the transaction that makes the change, so
/// readers (the gateway's event stream) can put a job's changes in the order they happened however the broker delivers
/// them. These number one change at a time. Three writers number their own: JobStore's queueing and the dispatch pass's
/// assignments (many jobs in one statement), and the completion (AttemptCompletedConsumer), which counts its number from
/// the version it read under the job's lock plus the changes numbered in its transaction, checks it in its update, and
/// when it also starts its job takes two numbers in that one update.
/// </summary>
public static class JobStatusEvents
{
    public static async Task EnqueueAsync(NpgsqlTransaction tx, MessageOutbox outbox, JobStatusChanged change, CancellationToken ct)
    {
        var version = await tx.Connection!.ExecuteScalarAsync<int>(new CommandDefinition(
            "update jobs set status_version = status_version + 1 where id = @id returning status_version",
            new { id = change.JobId.Value }, tx, cancellationToken: ct));
        await outbox.EnqueueAsync(tx, change with { Version = version }, ct: ct);
    }

    /// <summary>
    /// A change whose own statement already took the job's next version (<c>status_version = status_version + 1 returning
    /// status_version</c>).
    /// </summary>
    public static Task EnqueueNumberedAsync(NpgsqlTransaction tx, MessageOutbox outbox, int version, JobStatusChanged change, CancellationToken ct) =>
        outbox.EnqueueAsync(tx, change with { Version = version }, ct: ct);
}
