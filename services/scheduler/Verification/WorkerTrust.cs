using Npgsql;
using Platform.Hosting.Database;

namespace Platform.Scheduler.Verification;

/// <summary>The streaks adaptive trust decides on (see <see cref="SpotChecks"/>), kept per worker and kernel.</summary>
public static class WorkerTrust
{
    /// <summary>
    /// Counts one result of each worker: accepted ones extend their streak, failed ones (a lost comparison, a bad
    /// signature) reset it to zero. <paramref name="compared"/> says whether the result was checked against another.
    /// </summary>
    public static Task RecordAsync(NpgsqlTransaction tx, IReadOnlyCollection<string> workerIds, string kernel, bool accepted, bool compared,
        DateTimeOffset now, CancellationToken ct) =>
        Statements.ExecuteAsync(tx, Record(workerIds, kernel, accepted, compared, now), ct);

    /// <summary>The statement <see cref="RecordAsync"/> runs, for a caller that sends it with others in one round trip; null when there is no worker.</summary>
    public static NpgsqlBatchCommand? Record(IReadOnlyCollection<string> workerIds, string kernel, bool accepted, bool compared, DateTimeOffset now) =>
        workerIds.Count == 0 ? null : new NpgsqlBatchCommand(
            """
            insert into worker_trust as t (worker_id, kernel, streak, accepted, checked, mismatches, updated_at)
            select w, @kernel, case when @accepted then 1 else 0 end, case when @accepted then 1 else 0 end,
                   case when @compared then 1 else 0 end, case when @accepted then 0 else 1 end, @now
            from unnest(@workerIds) as w
            on conflict (worker_id, kernel) do update set
                streak = case when @accepted then t.streak + 1 else 0 end,
                accepted = t.accepted + excluded.accepted,
                checked = t.checked + excluded.checked,
                mismatches = t.mismatches + excluded.mismatches,
                updated_at = excluded.updated_at
            """)
        {
            Parameters =
            {
                new("workerIds", workerIds.Order(StringComparer.Ordinal).ToArray()), new("kernel", kernel), new("accepted", accepted),
                new("compared", compared), new("now", now),
            },
        };
}
