using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Leases;

/// <summary>
/// Takes work back from workers that stopped answering: a worker silent for three heartbeat intervals is
/// marked offline, and every attempt it held, or whose lease ran out, ends as worker_lost or lease_expired;
/// the job goes back to the queue (or fails once it has had its attempts). Rows are claimed with SKIP
/// LOCKED, so scheduler instances share this work.
/// </summary>
public sealed class LeaseMonitor(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, IOptions<SchedulerOptions> options,
    DatabaseState database, TimeProvider clock, ILogger<LeaseMonitor> logger) : BackgroundService
{
    private sealed record Lapsed(string JobId, string AttemptId, string WorkerId, bool WorkerOnline);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
        do
        {
            try
            {
                if (database.Migrated && await SweepAsync(stoppingToken) > 0)
                    dispatcher.Poke();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Lease sweep failed; retrying");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    // Often enough that a lost worker's jobs move within a fraction of the heartbeat timeout or the lease.
    private TimeSpan Interval => TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks,
        Math.Min(options.Value.HeartbeatInterval.Ticks, options.Value.LeaseDuration.Ticks) / 2));

    public async Task<int> SweepAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        var silent = await connection.QueryAsync<string>(new CommandDefinition(
            "update workers set online = false where online and last_seen_at < @aliveSince returning id",
            new { aliveSince = now - 3 * o.HeartbeatInterval }, cancellationToken: ct));
        foreach (var worker in silent)
            logger.LogWarning("Worker {WorkerId} missed three heartbeats and is offline", worker);

        await using var tx = await connection.BeginTransactionAsync(ct);
        var lapsed = (await connection.QueryAsync<Lapsed>(new CommandDefinition(
            """
            select j.id as JobId, j.attempt_id as AttemptId, j.worker_id as WorkerId, coalesce(w.online, false) as WorkerOnline
            from jobs j left join workers w on w.id = j.worker_id
            where j.status in ('assigned', 'running') and (j.lease_deadline < @now or not coalesce(w.online, false))
            order by j.lease_deadline
            limit 200
            for update of j skip locked
            """, new { now }, tx, cancellationToken: ct))).ToList();
        foreach (var job in lapsed)
        {
            var (reason, detail) = job.WorkerOnline
                ? ("lease_expired", $"worker {job.WorkerId} did not finish or renew the attempt before its lease ran out")
                : ("worker_lost", $"worker {job.WorkerId} stopped sending heartbeats");
            await JobStore.EndAttemptAsync(tx, outbox, JobId.From(job.JobId), AttemptId.From(job.AttemptId), reason, detail,
                retry: true, o.MaxAttempts, now, ct);
            logger.LogWarning("Job {JobId}: attempt {AttemptId} {Reason}", job.JobId, job.AttemptId, reason);
        }
        await outbox.CommitAsync(tx, ct);
        return lapsed.Count;
    }
}
