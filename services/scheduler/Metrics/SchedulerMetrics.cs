using System.Diagnostics.Metrics;
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

    private static readonly Counter<long> PassedOver = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.placement.passed_over", "{worker}", "Why workers were not chosen, as recorded in the placement log (chosen included)");

    public static IServiceCollection AddSchedulerMetrics(this IServiceCollection services) => services
        .AddDatabaseGauge("platform.scheduler.jobs", "{job}", "Jobs by state in the scheduler",
            "select status as state, count(*) as value from jobs group by status")
        .AddDatabaseGauge("platform.queue.depth", "{job}", "Jobs queued for a worker",
            "select count(*) as value from jobs where status = 'queued'")
        .AddDatabaseGauge("platform.queue.oldest_age", "s", "How long the oldest queued job has waited",
            "select coalesce(extract(epoch from now() - min(queued_at)), 0)::float8 as value from jobs where status = 'queued'")
        // accepted / rejected / unverified are the verification outcomes; failed carries its reason.
        .AddDatabaseGauge("platform.attempts", "{attempt}", "Attempts by status and, for ended ones, reason",
            "select status, coalesce(reason, '') as reason, count(*) as value from attempts group by status, reason")
        .AddDatabaseGauge("platform.workers", "{worker}", "Workers known to the scheduler, online or not",
            "select case when online then 'online' else 'offline' end as state, count(*) as value from workers group by online")
        .AddDatabaseGauge("platform.worker.slots", "{slot}", "Slots of each online worker, as it announced them",
            "select id as worker, slots as value from workers where online")
        .AddDatabaseGauge("platform.worker.slots.used", "{attempt}", "Attempts each worker holds",
            "select worker_id as worker, count(*) as value from jobs where status in ('assigned', 'running') and worker_id is not null group by worker_id")
        .AddDatabaseGauge("platform.worker.gflops", "{gflop}/s", "Each worker's speed per kernel as the network measured it (median of its recent attempts)",
            """
            select worker_id as worker, kernel, (select percentile_cont(0.5) within group (order by r) from unnest(rates) as r) as value
            from worker_speed where cardinality(rates) > 0
            """)
        .AddDatabaseGauge("platform.worker.joules", "{joule}", "Energy each worker's checked results report, in all",
            "select worker_id as worker, sum(joules) as value from worker_energy group by worker_id")
        .AddDatabaseGauge("platform.worker.gflop", "{gflop}", "Work each worker's accepted results did, in all",
            "select worker_id as worker, sum(gflop) as value from worker_energy group by worker_id");

    public static void PassEnded(int assigned, int noFit)
    {
        if (assigned > 0)
            Placements.Add(assigned, new KeyValuePair<string, object?>("result", "assigned"));
        if (noFit > 0)
            Placements.Add(noFit, new KeyValuePair<string, object?>("result", "no_fit"));
    }

    public static void WorkerPassedOver(string reason) => PassedOver.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
