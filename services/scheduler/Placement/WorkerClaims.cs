using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.Hosting.Database;

namespace Platform.Scheduler.Placement;

/// <summary>
/// What a worker claims against what the scheduler measures of it. A worker says how many GFLOP/s it does per
/// kernel (WorkerOnline); the scheduler times its accepted attempts by its own clock, from assignment to result,
/// and believes the claim only up to <see cref="SchedulerOptions.ClaimTolerance"/> times the median of the latest
/// <see cref="SchedulerOptions.ClaimSamples"/> measurements. A node claiming ten times its speed wins placement
/// only until it has been measured a few times.
/// </summary>
public static class WorkerClaims
{
    /// <summary>The rate placement and attempt deadlines use: the claim, bounded by the measured median once there are enough samples.</summary>
    public static double EffectiveRate(double claimed, IReadOnlyList<double>? measured, SchedulerOptions options) =>
        measured is { Count: > 0 } && measured.Count >= options.ClaimSamples ? Math.Min(claimed, options.ClaimTolerance * Median(measured)) : claimed;

    /// <summary>Per kernel, the rates the scheduler measured (from worker_speed, as JSON); empty when none has enough samples.</summary>
    public static IReadOnlyDictionary<string, double[]> Measured(string? json) =>
        json is null ? new Dictionary<string, double[]>() : JsonSerializer.Deserialize<Dictionary<string, double[]>>(json, PlatformJson.Options)!;

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Records the speed of accepted attempts, in the transaction that accepts them: the job's GFLOP estimate (the
    /// network's cost model, not the node's figure) times the attempts the worker held when this one was assigned
    /// (they shared its device), over the scheduler-clock time from assignment to result less the input transfer.
    /// Attempts shorter than <see cref="SchedulerOptions.SpeedSampleMinimumTime"/> are not counted: their time is
    /// mostly messaging. The latest <see cref="SchedulerOptions.ClaimSamples"/> are kept. The caller may leave out
    /// attempts that ran less than that minimum from assignment to now (AttemptCompletedConsumer does, to skip the
    /// statement for tiny jobs); a filter there must never be stricter than this one.
    /// </summary>
    public static Task RecordSpeedAsync(NpgsqlTransaction tx, IReadOnlyCollection<string> attemptIds, SchedulerOptions options, DateTimeOffset now,
        CancellationToken ct) =>
        Statements.ExecuteAsync(tx, RecordSpeed(attemptIds, options, now), ct);

    /// <summary>The statement <see cref="RecordSpeedAsync"/> runs, for a caller that sends it with others in one round trip; null when there is no attempt.</summary>
    public static NpgsqlBatchCommand? RecordSpeed(IReadOnlyCollection<string> attemptIds, SchedulerOptions options, DateTimeOffset now) =>
        attemptIds.Count == 0 ? null : new NpgsqlBatchCommand(
            """
            insert into worker_speed as s (worker_id, kernel, samples, rates, updated_at)
            select a.worker_id, j.kernel, 1, array[j.estimated_gflop * a.concurrent / t.seconds], @now
            from attempts a join jobs j on j.id = a.job_id
            cross join lateral (select extract(epoch from a.finished_at - a.assigned_at)::double precision - j.input_bytes / @transferBytesPerSecond as seconds) t
            where a.id = any(@attemptIds) and a.finished_at is not null and j.estimated_gflop > 0 and t.seconds >= @minimumSeconds
            order by a.worker_id
            on conflict (worker_id, kernel) do update set
                samples = s.samples + 1,
                rates = (s.rates || excluded.rates)[greatest(1, cardinality(s.rates) + 2 - @keep):],
                updated_at = excluded.updated_at
            """)
        {
            Parameters =
            {
                new("attemptIds", attemptIds.ToArray()),
                new("now", now),
                new("transferBytesPerSecond", options.TransferMegabytesPerSecond * 1e6),
                new("minimumSeconds", Math.Max(options.SpeedSampleMinimumTime.TotalSeconds, 0.001)),
                new("keep", options.ClaimSamples),
            },
        };
}
