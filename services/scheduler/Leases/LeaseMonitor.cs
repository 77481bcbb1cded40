using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Leases;

/// <summary>
/// Takes work back from workers that stopped answering. A worker silent for three heartbeat intervals is
/// marked offline at once, so it gets no new work; but the work it is running is only taken (worker_lost) once
/// it has been silent for the whole grace period and the attempt's lease has run out, so a paused process, a
/// network blip or a broker restart shorter than the grace period moves nothing. A worker that keeps beating
/// but has not listed an attempt for its lease and a grace period more (a message lost, a worker restarted
/// under the same id) has lost track of it: that attempt ends as lease_expired. Nothing is taken until a grace period after this scheduler started or
/// its broker connection recovered (<see cref="DeafSpells"/>): while it was deaf, silence proves nothing.
/// Beating proves a worker is alive, not that it works: an attempt past its own deadline (from the job's GFLOP
/// and the worker's effective rate, with slack; see the dispatcher) ends as attempt_overdue even while its worker
/// beats and lists it; the job goes to another worker, the worker is told to stop it and loses reputation.
/// Rows are claimed with SKIP LOCKED, so scheduler instances share this work.
/// </summary>
public sealed class LeaseMonitor(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, IOptions<SchedulerOptions> options,
    DatabaseState database, DeafSpells deafSpells, TimeProvider clock, ILogger<LeaseMonitor> logger) : BackgroundService
{
    private sealed record Overdue(string JobId, string AttemptId, string WorkerId, DateTime AssignedAt, DateTime Deadline);

    private sealed record Lapsed(string JobId, string AttemptId, string WorkerId, DateTime? LastSeenAt, DateTime LeaseDeadline, bool Silent);

    private DateTimeOffset? _holdLogged;

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
        {
            logger.LogWarning("Worker {WorkerId} missed three heartbeats: no new work for it; its running work waits out the {Grace} grace period",
                worker, JobReasons.Duration(o.GracePeriod));
        }

        if (Holding(now, o.GracePeriod))
            return 0;

        await using var tx = await connection.BeginTransactionAsync(ct);
        var lapsed = (await connection.QueryAsync<Lapsed>(new CommandDefinition(
            """
            select j.id as JobId, j.attempt_id as AttemptId, j.worker_id as WorkerId, w.last_seen_at as LastSeenAt, j.lease_deadline as LeaseDeadline,
                   (w.id is null or w.last_seen_at < @silentSince) as Silent
            from jobs j left join workers w on w.id = j.worker_id
            where j.status in ('assigned', 'running') and j.lease_deadline < @now
              and (w.id is null or w.last_seen_at < @silentSince or j.lease_deadline < @silentSince)
            order by j.lease_deadline
            limit 200
            for update of j skip locked
            """, new { now, silentSince = now - o.GracePeriod }, tx, cancellationToken: ct))).ToList();
        foreach (var job in lapsed)
        {
            var (reason, detail) = job.Silent
                ? (JobReasons.WorkerLost, $"Worker {job.WorkerId} stopped sending heartbeats for longer than the {JobReasons.Duration(o.GracePeriod)} grace period"
                    + (job.LastSeenAt is { } seen ? $" (last heard {JobReasons.Duration(now - Utc(seen))} ago)." : "."))
                : (JobReasons.LeaseExpired, $"Worker {job.WorkerId} kept sending heartbeats but none renewed this attempt; its lease ran out "
                    + $"{JobReasons.Duration(now - Utc(job.LeaseDeadline))} ago, longer than the {JobReasons.Duration(o.GracePeriod)} grace period.");
            await JobStore.EndAttemptAsync(tx, outbox, JobId.From(job.JobId), AttemptId.From(job.AttemptId), reason, detail,
                retry: true, o.MaxAttempts, now, ct);
            logger.LogWarning("Job {JobId}: attempt {AttemptId} ended, {Reason}: {Detail}", job.JobId, job.AttemptId, reason, detail);
        }
        var overdue = await EndOverdueAsync(tx, now, ct);
        await outbox.CommitAsync(tx, ct);
        return lapsed.Count + overdue;
    }

    private async Task<int> EndOverdueAsync(NpgsqlTransaction tx, DateTimeOffset now, CancellationToken ct)
    {
        var o = options.Value;
        var connection = tx.Connection!;
        var overdue = (await connection.QueryAsync<Overdue>(new CommandDefinition(
            """
            select j.id as JobId, j.attempt_id as AttemptId, j.worker_id as WorkerId, a.assigned_at as AssignedAt, j.attempt_deadline as Deadline
            from jobs j join attempts a on a.id = j.attempt_id
            where j.status in ('assigned', 'running') and j.attempt_deadline < @now
            order by j.attempt_deadline
            limit 200
            for update of j skip locked
            """, new { now }, tx, cancellationToken: ct))).ToList();
        var ended = 0;
        foreach (var job in overdue)
        {
            var detail = $"Worker {job.WorkerId} had the attempt for {JobReasons.Duration(now - Utc(job.AssignedAt))}, past its deadline of "
                + $"{JobReasons.Duration(Utc(job.Deadline) - Utc(job.AssignedAt))} (the job's size at the worker's measured speed, with slack).";
            if (!await JobStore.EndAttemptAsync(tx, outbox, JobId.From(job.JobId), AttemptId.From(job.AttemptId), JobReasons.AttemptOverdue, detail,
                    retry: true, o.MaxAttempts, now, ct))
                continue;
            ended++;
            await connection.ExecuteAsync(new CommandDefinition(
                "update workers set reputation = reputation * @factor where id = @id",
                new { factor = o.OverdueReputationFactor, id = job.WorkerId }, tx, cancellationToken: ct));
            // The worker may still be computing it: the slot is better spent on its next job.
            await outbox.EnqueueAsync(tx, new CancelAttempt
            {
                JobId = JobId.From(job.JobId),
                AttemptId = AttemptId.From(job.AttemptId),
                WorkerId = WorkerId.From(job.WorkerId),
                OccurredAt = now,
            }, sendTo: NodeNames.ControlAddress(WorkerId.From(job.WorkerId)), ct: ct);
            logger.LogWarning("Job {JobId}: attempt {AttemptId} ended, {Reason}: {Detail}", job.JobId, job.AttemptId, JobReasons.AttemptOverdue, detail);
        }
        return ended;
    }

    /// <summary>Within a grace period of (re)starting to listen, or deaf now: running work stays where it is.</summary>
    private bool Holding(DateTimeOffset now, TimeSpan grace)
    {
        var since = deafSpells.ListeningSince;
        if (!deafSpells.Deaf && now - since >= grace)
            return false;
        if (_holdLogged != since)
        {
            _holdLogged = since;
            if (deafSpells.Deaf)
                logger.LogWarning("The broker connection is down: no worker is declared lost and no lease expires until it is back and a grace period has passed");
            else
                logger.LogInformation("Listening since {Since:o}: no worker is declared lost and no lease expires before {Until:o}", since, since + grace);
        }
        return true;
    }

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}
