using Dapper;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Every JobStatusChanged leaves through here: it is numbered with the job's next status version, in the
/// transaction that makes the change, so readers (the gateway's event stream) can put a job's changes in the
/// order they happened however the broker delivers them.
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
    /// status_version</c>), queued with the message that goes with it (<paramref name="alongside"/>) in one insert.
    /// </summary>
    public static Task EnqueueNumberedAsync(NpgsqlTransaction tx, MessageOutbox outbox, int version, JobStatusChanged change, CancellationToken ct,
        object? alongside = null) =>
        outbox.EnqueueManyAsync<object>(tx, alongside is null ? [change with { Version = version }] : [change with { Version = version }, alongside], ct: ct);

    /// <summary>One change each for many jobs (a dispatch pass's assignments): numbered with one statement.</summary>
    public static async Task EnqueueManyAsync(NpgsqlTransaction tx, MessageOutbox outbox, IReadOnlyList<JobStatusChanged> changes, CancellationToken ct)
    {
        if (changes.Count == 0)
            return;
        var ids = changes.Select(c => c.JobId.Value).ToArray();
        if (ids.Distinct().Count() != ids.Length)
            throw new ArgumentException("one change per job: two changes of one job in a batch would need two versions", nameof(changes));
        var versions = (await tx.Connection!.QueryAsync<(string Id, int Version)>(new CommandDefinition(
            "update jobs j set status_version = j.status_version + 1 from unnest(@ids) as i (id) where j.id = i.id returning j.id, j.status_version",
            new { ids }, tx, cancellationToken: ct))).ToDictionary(r => r.Id, r => r.Version);
        await outbox.EnqueueManyAsync(tx, changes.Select(c => c with { Version = versions[c.JobId.Value] }).ToList(), ct: ct);
    }
}
