using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// The reconciler for jobs that stopped moving: a job not finished <see cref="SchedulerOptions.JobDeadline"/> after
/// the scheduler took it, in any state short of an ending (waiting for funding that never came, queued with no node
/// that fits, held by workers that never finish it), fails with deadline_exceeded; a running attempt is ended and its
/// worker told to stop, and rewards refunds the escrow on the JobFailed. Each job is ended by one conditional
/// transaction claimed with SKIP LOCKED, so scheduler instances share the work and a job that finishes meanwhile is
/// left alone.
/// </summary>
public sealed class JobDeadlines(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, IOptions<SchedulerOptions> options, DatabaseState database,
    TimeProvider clock, ILogger<JobDeadlines> logger) : BackgroundService
{
    private sealed record Late(string Id, string ClientAccountId, string Status, string? WorkerId, string? AttemptId, DateTime CreatedAt);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Reconciling.RunAsync(options.Value.JobDeadlineCheckInterval, clock, database, SweepAsync, dispatcher.Poke, logger, stoppingToken);

    /// <summary>Fails up to 200 late jobs; returns how many.</summary>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var deadline = options.Value.JobDeadline;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // A row a cancel made before its job's submission has no client until the submission comes; it waits too.
        var late = (await connection.QueryAsync<Late>(new CommandDefinition(
            """
            select id as Id, client_account_id as ClientAccountId, status as Status, worker_id as WorkerId, attempt_id as AttemptId, created_at as CreatedAt
            from jobs
            where status in ('pending', 'queued', 'assigned', 'running') and created_at < @cutoff and client_account_id is not null
            order by created_at limit 200
            for update skip locked
            """, new { cutoff = now - deadline }, tx, cancellationToken: ct))).ToList();
        foreach (var job in late)
        {
            var jobId = JobId.From(job.Id);
            var detail = $"The job was not finished {JobReasons.Duration(deadline)} after the network took it (it was {job.Status}); it was given up and its credits refunded.";
            WorkerId? worker = job.WorkerId is null ? null : WorkerId.From(job.WorkerId);
            AttemptId? attempt = job.AttemptId is null ? null : AttemptId.From(job.AttemptId);
            if (job.Status is "assigned" or "running" && worker is { } w && attempt is { } a)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    "update attempts set status = 'failed', finished_at = @now, reason = @reason, detail = @detail where id = @id and status in ('assigned', 'running')",
                    new { now, reason = JobReasons.DeadlineExceeded, detail, id = a.Value }, tx, cancellationToken: ct));
                await outbox.EnqueueAsync(tx, new CancelAttempt { JobId = jobId, AttemptId = a, WorkerId = w, OccurredAt = now }, sendTo: NodeNames.ControlAddress(w), ct: ct);
            }
            await JobStore.FailAsync(tx, outbox, jobId, AccountId.From(job.ClientAccountId), worker, attempt, JobReasons.DeadlineExceeded, detail, now, ct);
            logger.LogWarning("Job {JobId} failed: not finished {Deadline} after it was taken (it was {Status})", job.Id, JobReasons.Duration(deadline), job.Status);
        }
        await outbox.CommitAsync(tx, ct);
        return late.Count;
    }
}
