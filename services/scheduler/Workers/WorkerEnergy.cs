using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;

namespace Platform.Scheduler.Workers;

/// <summary>
/// The energy of accepted attempts, added up per worker and kernel in the transaction that accepts them. Only
/// joules the scheduler checked count (<see cref="AcceptedAttempt.CheckedJoules"/>), against the job's GFLOP as the
/// network estimated it: the same figures go to rewards in JobCompleted for the efficiency bonus, so placement, the
/// views and the bonus all rank by one measure, and none of it by a node's own word.
/// </summary>
public static class WorkerEnergy
{
    public static Task RecordAsync(NpgsqlTransaction tx, string kernel, double gflop, IEnumerable<AcceptedAttempt> accepted, DateTimeOffset now,
        CancellationToken ct) =>
        Statements.ExecuteAsync(tx, Record(kernel, gflop, accepted, now), ct);

    /// <summary>The statement <see cref="RecordAsync"/> runs, for a caller that sends it with others in one round trip; null when no joules were checked.</summary>
    public static NpgsqlBatchCommand? Record(string kernel, double gflop, IEnumerable<AcceptedAttempt> accepted, DateTimeOffset now)
    {
        // One row per worker, in a fixed order, so concurrent acceptances lock rows the same way round.
        var read = accepted.Where(a => a.CheckedJoules is not null)
            .GroupBy(a => a.WorkerId.Value)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => (WorkerId: g.Key, Attempts: g.Count(), Measured: g.Count(a => !a.Metrics.JoulesEstimated),
                Joules: g.Sum(a => a.CheckedJoules!.Value), Gflop: g.Count() * gflop))
            .ToList();
        if (read.Count == 0)
            return null;
        return new NpgsqlBatchCommand(
            """
            insert into worker_energy as e (worker_id, kernel, attempts, measured_attempts, joules, gflop, updated_at)
            select w, @kernel, n, m, j, g, @now from unnest(@workers, @attempts, @measured, @joules, @gflop) as t(w, n, m, j, g)
            on conflict (worker_id, kernel) do update set
                attempts = e.attempts + excluded.attempts, measured_attempts = e.measured_attempts + excluded.measured_attempts,
                joules = e.joules + excluded.joules, gflop = e.gflop + excluded.gflop, updated_at = excluded.updated_at
            """)
        {
            Parameters =
            {
                new("kernel", kernel),
                new("now", now),
                new("workers", read.Select(r => r.WorkerId).ToArray()),
                new("attempts", read.Select(r => (long)r.Attempts).ToArray()),
                new("measured", read.Select(r => (long)r.Measured).ToArray()),
                new("joules", read.Select(r => r.Joules).ToArray()),
                new("gflop", read.Select(r => r.Gflop).ToArray()),
            },
        };
    }
}
