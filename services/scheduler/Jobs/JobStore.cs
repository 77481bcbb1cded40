using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Metrics;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

/// <summary>Job state transitions shared by the consumers. Each one is a conditional UPDATE, so a redelivered
/// or reordered message finds the job already past that state and changes nothing.</summary>
public static class JobStore
{
    /// <summary>
    /// A job is queued once it has both its spec (JobSubmitted) and its funding (JobFunded): queues those of
    /// <paramref name="jobIds"/> that are recorded, funded and still pending, each with its "queued" change numbered,
    /// and returns them for the dispatcher's ready queue once the transaction commits. One statement for one job or thousands.
    /// </summary>
    public static async Task<List<ReadyQueue.Entry>> QueueIfReadyAsync(NpgsqlTransaction tx, MessageOutbox outbox, IReadOnlyList<JobId> jobIds, DateTimeOffset now,
        CancellationToken ct)
    {
        var queued = (await tx.Connection!.QueryAsync<QueuedJob>(new CommandDefinition(
            """
            update jobs set status = 'queued', queued_at = @now, status_version = status_version + 1
            where id = any(@ids) and status = 'pending' and funded and spec is not null
            returning id as Id, status_version as Version, client_account_id as ClientAccountId, priority, queued_at as QueuedAt
            """, new { ids = jobIds.Select(j => j.Value).ToArray(), now }, tx, cancellationToken: ct))).ToList();
        await outbox.EnqueueManyAsync(tx, queued.Select(q => new JobStatusChanged { JobId = JobId.From(q.Id), Status = "queued", OccurredAt = now, Version = q.Version }).ToList(), ct: ct);
        return [.. queued.Select(q => new ReadyQueue.Entry(q.Id, q.ClientAccountId, q.Priority, q.QueuedAt))];
    }

    private sealed record QueuedJob(string Id, int Version, string ClientAccountId, int Priority, DateTime QueuedAt);

    private sealed record HeldJob(string ClientAccountId, string WorkerId, int AttemptCount, int ResultsNeeded, bool Verifying);

    /// <summary>
    /// Ends the job's current attempt with <paramref name="reason"/>. With <paramref name="retry"/> the job is
    /// queued for another worker, or, once it has had <paramref name="maxAttempts"/> for each result it needs
    /// (a job verified by replicas needs several), failed with the history of
    /// every attempt; without, it fails with this reason. Does nothing (false) when <paramref name="attemptId"/>
    /// no longer holds the job.
    /// </summary>
    public static async Task<bool> EndAttemptAsync(NpgsqlTransaction tx, MessageOutbox outbox, JobId jobId, AttemptId attemptId,
        string reason, string detail, bool retry, int maxAttempts, DateTimeOffset now, CancellationToken ct)
    {
        var connection = tx.Connection!;
        var held = await connection.QuerySingleOrDefaultAsync<HeldJob>(new CommandDefinition(
            """
            select client_account_id as ClientAccountId, worker_id as WorkerId, attempt_count as AttemptCount,
                   results_needed as ResultsNeeded, exists (select 1 from attempts a where a.job_id = jobs.id and a.status = 'submitted') as Verifying
            from jobs
            where id = @jobId and attempt_id = @attemptId and status in ('assigned', 'running')
            for update
            """, new { jobId = jobId.Value, attemptId = attemptId.Value }, tx, cancellationToken: ct));
        if (held is null)
            return false;

        await connection.ExecuteAsync(new CommandDefinition(
            "update attempts set status = 'failed', finished_at = @now, reason = @reason, detail = @detail where id = @attemptId",
            new { now, reason, detail, attemptId = attemptId.Value }, tx, cancellationToken: ct));
        outbox.AfterCommit(tx, () => SchedulerMetrics.AttemptsEnded("failed", reason));
        if (!retry)
        {
            await FailAsync(tx, outbox, jobId, AccountId.From(held.ClientAccountId), WorkerId.From(held.WorkerId), attemptId, reason, detail, now, ct);
            return true;
        }
        var allowed = maxAttempts * held.ResultsNeeded;
        if (held.AttemptCount < allowed)
        {
            // The job keeps its place in the queue: it waited already.
            await connection.ExecuteAsync(new CommandDefinition(
                "update jobs set status = 'queued', worker_id = null, attempt_id = null, lease_deadline = null where id = @jobId",
                new { jobId = jobId.Value }, tx, cancellationToken: ct));
            await JobStatusEvents.EnqueueAsync(tx, outbox, new JobStatusChanged
            {
                JobId = jobId,
                Status = held.Verifying ? "verifying" : "queued",
                WorkerId = WorkerId.From(held.WorkerId),
                AttemptId = attemptId,
                AttemptStatus = "failed",
                Reason = reason,
                Detail = $"{JobReasons.Message(reason, detail)} This was attempt {held.AttemptCount} of {allowed}; the job is queued for another worker.",
                OccurredAt = now,
            }, ct: ct);
            return true;
        }

        var history = await connection.ExecuteScalarAsync<string>(new CommandDefinition(
            """
            select string_agg(format('attempt %s on %s: %s (%s)', n, worker_id, reason, rtrim(detail, '.')), '; ' order by n)
            from (select row_number() over (order by assigned_at, id) as n, worker_id, reason, detail from attempts where job_id = @jobId) a
            """, new { jobId = jobId.Value }, tx, cancellationToken: ct));
        await FailAsync(tx, outbox, jobId, AccountId.From(held.ClientAccountId), WorkerId.From(held.WorkerId), attemptId,
            JobReasons.AttemptsExhausted, $"The job failed all {held.AttemptCount} attempt(s) it was allowed: {history}.", now, ct, reason, detail);
        return true;
    }

    /// <summary>
    /// Marks the job failed and tells the gateway and rewards (which refunds it). <paramref name="attemptReason"/>
    /// says why the attempt named ended when that is not the job's reason.
    /// </summary>
    public static async Task FailAsync(NpgsqlTransaction tx, MessageOutbox outbox, JobId jobId, AccountId client, WorkerId? worker, AttemptId? attempt,
        string reason, string detail, DateTimeOffset now, CancellationToken ct, string? attemptReason = null, string? attemptDetail = null)
    {
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            "update jobs set status = 'failed', reason = @reason, detail = @detail, finished_at = @now where id = @jobId",
            new { reason, detail, now, jobId = jobId.Value }, tx, cancellationToken: ct));
        await JobStatusEvents.EnqueueAsync(tx, outbox, new JobStatusChanged
        {
            JobId = jobId,
            Status = "failed",
            WorkerId = worker,
            AttemptId = attempt,
            Reason = reason,
            Detail = detail,
            AttemptReason = attemptReason,
            AttemptDetail = attemptDetail,
            OccurredAt = now,
        }, ct: ct);
        await outbox.EnqueueAsync(tx, new JobFailed { JobId = jobId, ClientAccountId = client, Reason = reason, Detail = detail, OccurredAt = now }, ct: ct);
    }
}
