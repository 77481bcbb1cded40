using System.Diagnostics.Metrics;
using Platform.Contracts;
using Platform.Hosting.Metrics;

namespace Platform.Scheduler.Metrics;

/// <summary>
/// The scheduler's metrics: its jobs and queue, attempts and how they ended (verification included), workers, their
/// slots, measured speed and energy (from its database), and each dispatch pass's decisions (counted as they happen).
/// </summary>
public static class SchedulerMetrics
{
    private static readonly Counter<long> Placements = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.placements", "{job}", "Jobs a dispatch pass considered: assigned, or no worker fit");

    private static readonly Counter<long> EndedAttempts = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.attempts.ended", "{attempt}", "Attempts that ended, by status (accepted, rejected, unverified: the verification outcomes; failed) and reason");

    private static readonly Counter<long> PassedOver = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.placement.passed_over", "{worker}", "Why workers were not chosen, as recorded in the placement log (chosen included)");

    public static IServiceCollection AddSchedulerMetrics(this IServiceCollection services) => services
        // Live jobs only, each state through its own partial index: the finished ones are counted as they end
        // (the gateway's platform_job_duration_seconds_count), never by scanning a table that only grows.
        .AddDatabaseGauge("platform.scheduler.jobs", "{job}", "Live jobs by state and kernel in the scheduler",
            """
            select 'queued' as state, kernel, count(*) as value from jobs where status = 'queued' group by kernel
            union all
            select status as state, kernel, count(*) as value from jobs where status in ('assigned', 'running') group by status, kernel
            """)
        .AddDatabaseGauge("platform.queue.depth", "{job}", "Jobs queued for a worker",
            "select count(*) as value from jobs where status = 'queued'")
        .AddDatabaseGauge("platform.queue.oldest_age", "s", "How long the oldest queued job has waited",
            "select coalesce(extract(epoch from now() - min(queued_at)), 0)::float8 as value from jobs where status = 'queued'")
        .AddDatabaseGauge("platform.workers", "{worker}", "Workers known to the scheduler, online or not",
            "select case when online then 'online' else 'offline' end as state, count(*) as value from workers group by online")
        .AddDatabaseGauge("platform.worker.slots", "{slot}", "Slots of each online worker, as it announced them",
            "select id as worker, slots as value from workers where online")
        .AddDatabaseGauge("platform.worker.slots.used", "{attempt}", "Attempts each worker holds",
            "select worker_id as worker, count(*) as value from jobs where status in ('assigned', 'running') and worker_id is not null group by worker_id")
        // Per-worker series for online workers only: a network's workers ever seen would be unbounded labels.
        .AddDatabaseGauge("platform.worker.gflops", "{gflop}/s", "Each online worker's speed per kernel as the network measured it (median of its recent attempts)",
            """
            select s.worker_id as worker, s.kernel, (select percentile_cont(0.5) within group (order by r) from unnest(s.rates) as r) as value
            from worker_speed s join workers w on w.id = s.worker_id where w.online and cardinality(s.rates) > 0
            """)
        .AddDatabaseGauge("platform.worker.joules", "{joule}", "Energy each online worker's checked results report, in all",
            "select e.worker_id as worker, sum(e.joules) as value from worker_energy e join workers w on w.id = e.worker_id where w.online group by e.worker_id")
        .AddDatabaseGauge("platform.worker.gflop", "{gflop}", "Work each online worker's accepted results did, in all",
            "select e.worker_id as worker, sum(e.gflop) as value from worker_energy e join workers w on w.id = e.worker_id where w.online group by e.worker_id");

    public static void PassEnded(int assigned, int noFit)
    {
        if (assigned > 0)
            Placements.Add(assigned, new KeyValuePair<string, object?>("result", "assigned"));
        if (noFit > 0)
            Placements.Add(noFit, new KeyValuePair<string, object?>("result", "no_fit"));
    }

    /// <summary>
    /// Counts attempts that ended. The reason is a label only if it is one of the platform's (JobReasons): a node's own
    /// words (its failure reason) must not make new series.
    /// </summary>
    public static void AttemptsEnded(string status, string? reason, int count = 1)
    {
        if (count > 0)
        {
            EndedAttempts.Add(count, new KeyValuePair<string, object?>("status", status),
                new KeyValuePair<string, object?>("reason", reason is null ? "" : JobReasons.Find(reason) is not null ? reason : "other"));
        }
    }

    public static void WorkerPassedOver(string reason) => PassedOver.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
