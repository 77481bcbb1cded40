using System.Text.Json;
using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Gateway.Metrics;
using Platform.Hosting.Messaging;

namespace Platform.Gateway.Jobs;

/// <summary>
/// Keeps the job read model current. Every update is conditional (a terminal status is final; otherwise the
/// latest event wins), so redelivered and reordered events are harmless. A message's statements commit together,
/// in one transaction, and no message is ever half applied. Status changes (four or more per job), completions and
/// settlements come in batches (<see cref="Batching"/>): one transaction for every message of a kind waiting, a
/// batch of one when the network is quiet. Every batch applies its messages in job order, so two batches touching the
/// same jobs never wait on each other in a cycle.
/// </summary>
public sealed class JobViewConsumer(NpgsqlDataSource db) :
    IConsumer<Batch<Bundle<JobStatusChanged>>>, IConsumer<JobRejected>, IConsumer<Batch<Bundle<JobCompleted>>>, IConsumer<JobFailed>, IConsumer<Batch<Bundle<PaymentSettled>>>,
    IConsumer<AttemptProgressed>
{
    /// <summary>
    /// At most 64 messages per transaction, two batches at once (one commits while the next fills); a batch closes
    /// after a quiet millisecond, the most a status waits before the view shows it.
    /// </summary>
    public static readonly MessageBatching Batching = new(64, MessageBatching.DefaultQuiet, 2);

    // A terminal status is final and always wins over a live one; among live statuses the latest to occur
    // wins, which also lets a job go from running back to queued when its worker is lost.
    private const string Advance = """
        update jobs set status = @status, status_rank = @rank, updated_at = @at,
            error_reason = case when @terminal then @reason else null end,
            error_detail = case when @terminal then @detail else null end,
            completed_at = case when @terminal then @at else completed_at end,
            outputs = coalesce(@outputs::jsonb, outputs)
        where id = @id and status_rank < 10 and (@terminal or updated_at <= @at)
        returning kernel, extract(epoch from (completed_at - created_at))::float8 as seconds
        """;

    /// <summary>A job this update ended: counted in the submit-to-end histogram once its transaction has committed.</summary>
    private sealed record JobEnd(string Kernel, string Status, double? Seconds);

    private sealed record EndRow(string Kernel, double? Seconds);

    private static void Record(IEnumerable<JobEnd?> ends)
    {
        foreach (var end in ends)
        {
            if (end is { Seconds: { } seconds })
                GatewayMetrics.JobEnded(end.Kernel, end.Status, seconds);
        }
    }

    /// <param name="outputs">A completion's outputs (JSON), written with it: a redelivery finds the job terminal and writes neither again.</param>
    /// <returns>The job's end, when this update ended it (a redelivery finds it ended and returns nothing).</returns>
    private static async Task<JobEnd?> AdvanceAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string id, string status, DateTimeOffset at, string? reason,
        string? detail, CancellationToken ct, string? outputs = null)
    {
        var row = await connection.QuerySingleOrDefaultAsync<EndRow>(new CommandDefinition(Advance, new
        {
            id,
            status,
            rank = JobStatuses.Rank(status),
            at,
            reason,
            detail,
            terminal = JobStatuses.IsTerminal(status),
            outputs,
        }, tx, cancellationToken: ct));
        return row is not null && JobStatuses.IsTerminal(status) ? new JobEnd(row.Kernel, status, row.Seconds) : null;
    }

    // An ended attempt keeps its status and the reason it ended with.
    private const string AttemptConflict = """
        on conflict (attempt_id) do update set
            status = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') then job_attempts.status else excluded.status end,
            reason = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') and job_attempts.reason is not null
                          then job_attempts.reason else coalesce(excluded.reason, job_attempts.reason) end,
            detail = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') and job_attempts.reason is not null
                          then job_attempts.detail else coalesce(excluded.detail, job_attempts.detail) end,
            signature = coalesce(excluded.signature, job_attempts.signature), updated_at = excluded.updated_at
        """;

    private const string UpsertAttempt = """
        insert into job_attempts (attempt_id, job_id, worker_id, status, signature, updated_at, reason, detail)
        values (@attemptId, @jobId, @workerId, @status, @signature, @at, @reason, @detail)
        """ + "\n" + AttemptConflict;

    // An accepted attempt, with what a receipt needs of it (the same values on every redelivery), in one statement.
    private const string UpsertAccepted = """
        insert into job_attempts (attempt_id, job_id, worker_id, status, signature, updated_at, reason, detail, public_key, metrics, spot_check, accepted_index)
        values (@attemptId, @jobId, @workerId, @status, @signature, @at, @reason, @detail, @publicKey, @metrics::jsonb, @spotCheck, @index)
        """ + "\n" + AttemptConflict + """
        , public_key = excluded.public_key, metrics = excluded.metrics, spot_check = excluded.spot_check, accepted_index = excluded.accepted_index
        """;

    /// <summary>
    /// Locks the batch's jobs, in id order, before any of their attempts. A status batch touches a job's row and, between
    /// its changes, other attempts of the same job; a completion batch touches the accepted attempts and then the job: a
    /// status batch holding a job and a completion batch holding one of its attempts each waited for the other
    /// (Postgres broke the cycle by failing one, retried seconds later, with the view behind meanwhile). Every batch
    /// that writes attempts takes its jobs first, in one order, so none waits for another in a cycle.
    /// </summary>
    private static Task LockJobsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IEnumerable<string> ids, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            "select 1 from jobs where id = any(@ids) order by id for update",
            new { ids = ids.Distinct().ToArray() }, tx, cancellationToken: ct));

    /// <summary>Wakes the event streams of these jobs once the transaction commits (<see cref="JobChangeSignal"/>).</summary>
    private static Task NotifyAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IEnumerable<string> jobIds, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(JobChangeSignal.NotifySql, new { changedJobs = jobIds.Distinct().ToArray() }, tx, cancellationToken: ct));

    private static bool Ended(string attemptStatus) => attemptStatus is "accepted" or "failed" or "rejected" or "cancelled" or "unverified";

    public async Task Consume(ConsumeContext<Batch<Bundle<JobStatusChanged>>> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // The conditional updates make the order of a job's changes irrelevant; jobs are taken in id order. A failure
        // rolls the whole batch back and it is delivered again, which applies nothing twice.
        var changes = context.Message.Items().OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ThenBy(m => m.Version).ToList();
        await LockJobsAsync(connection, tx, changes.Select(m => m.JobId.Value), ct);
        var ends = new List<JobEnd?>();
        foreach (var message in changes)
            ends.Add(await ApplyAsync(connection, tx, message, ct));
        await NotifyAsync(connection, tx, changes.Select(m => m.JobId.Value), ct);
        await tx.CommitAsync(ct);
        Record(ends);
    }

    private static async Task<JobEnd?> ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction tx, JobStatusChanged m, CancellationToken ct)
    {
        if (m.AttemptId is { } attempt && m.WorkerId is { } worker)
        {
            // A job queued again names the attempt that ended; a cancel names the one it stopped.
            var attemptStatus = m.AttemptStatus ?? m.Status switch
            {
                "completed" => "accepted",
                "failed" or "queued" => "failed",
                "cancelled" => "cancelled",
                "running" => "running",
                _ => "assigned",
            };
            await connection.ExecuteAsync(new CommandDefinition(UpsertAttempt, new
            {
                attemptId = attempt.Value,
                jobId = m.JobId.Value,
                workerId = worker.Value,
                status = attemptStatus,
                signature = (string?)null,
                at = m.OccurredAt,
                reason = Ended(attemptStatus) ? m.AttemptReason ?? m.Reason : null,
                detail = Ended(attemptStatus) ? m.AttemptReason is null ? m.Detail : m.AttemptDetail : null,
            }, tx, cancellationToken: ct));
        }
        if (m.Version is { } version)
            await JobEventLog.AppendAsync(connection, tx, m.JobId.Value, version, m.Status, m.AttemptId?.Value, m.WorkerId?.Value,
                m.AttemptStatus, m.Reason, m.Detail, m.OccurredAt, ct);
        // Completion is recorded from JobCompleted, which carries the outputs.
        return m.Status != JobStatuses.Completed ? await AdvanceAsync(connection, tx, m.JobId.Value, m.Status, m.OccurredAt, m.Reason, m.Detail, ct) : null;
    }

    public async Task Consume(ConsumeContext<JobRejected> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await JobEventLog.AppendAsync(connection, tx, m.JobId.Value, JobEventLog.RejectedVersion, JobStatuses.Rejected, null, null, null,
            m.Reason, m.Detail, m.OccurredAt, ct);
        var end = await AdvanceAsync(connection, tx, m.JobId.Value, JobStatuses.Rejected, m.OccurredAt, m.Reason, m.Detail, ct);
        await NotifyAsync(connection, tx, [m.JobId.Value], ct);
        await tx.CommitAsync(ct);
        Record([end]);
    }

    public async Task Consume(ConsumeContext<Batch<Bundle<JobCompleted>>> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var completions = context.Message.Items().OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ToList();
        await LockJobsAsync(connection, tx, completions.Select(m => m.JobId.Value), ct);
        var ends = new List<JobEnd?>();
        foreach (var m in completions)
            ends.Add(await ApplyAsync(connection, tx, m, ct));
        await tx.CommitAsync(ct);
        Record(ends);
    }

    private static async Task<JobEnd?> ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction tx, JobCompleted m, CancellationToken ct)
    {
        foreach (var (accepted, index) in m.AcceptedAttempts().Select((a, i) => (a, i)))
        {
            await connection.ExecuteAsync(new CommandDefinition(UpsertAccepted, new
            {
                attemptId = accepted.AttemptId.Value,
                jobId = m.JobId.Value,
                workerId = accepted.WorkerId.Value,
                status = "accepted",
                signature = accepted.Signature,
                at = m.OccurredAt,
                reason = m.Reason ?? JobReasons.Accepted,
                detail = m.Detail,
                publicKey = accepted.PublicKey,
                metrics = JsonSerializer.Serialize(accepted.Metrics, PlatformJson.Options),
                spotCheck = accepted.SpotCheck,
                index,
            }, tx, cancellationToken: ct));
        }
        return await AdvanceAsync(connection, tx, m.JobId.Value, JobStatuses.Completed, m.OccurredAt, m.Reason ?? JobReasons.Accepted, m.Detail, ct,
            outputs: JsonSerializer.Serialize(m.Outputs.ToDictionary(o => o.Key, o => o.Value.Value), PlatformJson.Options));
    }

    public async Task Consume(ConsumeContext<JobFailed> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        Record([await AdvanceAsync(connection, null, m.JobId.Value, JobStatuses.Failed, m.OccurredAt, m.Reason, m.Detail, context.CancellationToken)]);
    }

    public async Task Consume(ConsumeContext<Batch<Bundle<PaymentSettled>>> context)
    {
        var ct = context.CancellationToken;
        var settled = context.Message.Items().DistinctBy(m => m.JobId).OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ToList();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // The update alone would lock its jobs in whatever order the join produced, against status batches locking
        // them in id order: locked in id order first, like every other batch.
        await LockJobsAsync(connection, tx, settled.Select(m => m.JobId.Value), ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "update jobs j set cost = s.cost from unnest(@ids, @costs) as s (id, cost) where j.id = s.id",
            new { ids = settled.Select(m => m.JobId.Value).ToArray(), costs = settled.Select(m => m.Cost).ToArray() }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    /// <summary>Progress only moves forward, so a late or repeated report changes nothing.</summary>
    public async Task Consume(ConsumeContext<AttemptProgressed> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        // One statement: the job's streams are woken only when the progress moved.
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            with moved as (
                update job_attempts set progress = @fraction
                where attempt_id = @attemptId and job_id = @jobId and status in ('assigned', 'running') and (progress is null or progress < @fraction)
                returning job_id)
            select pg_notify('{JobChangeSignal.Channel}', job_id) from moved
            """,
            new { fraction = (float)Math.Clamp(m.Fraction, 0, 1), attemptId = m.AttemptId.Value, jobId = m.JobId.Value }, cancellationToken: context.CancellationToken));
    }
}

