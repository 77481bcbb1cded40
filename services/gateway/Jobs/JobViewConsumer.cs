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
    // wins, which also lets a job go from running back to queued when its worker is lost. Set-based: one statement for
    // every job of a round (see Rounds).
    private const string Advance = """
        update jobs j set status = c.status, status_rank = c.rank, updated_at = c.at,
            error_reason = case when c.terminal then c.reason else null end,
            error_detail = case when c.terminal then c.detail else null end,
            completed_at = case when c.terminal then c.at else j.completed_at end,
            outputs = coalesce(c.outputs::jsonb, j.outputs)
        from unnest(@ids, @statuses, @ranks, @ats, @reasons, @details, @terminals, @outputs)
            as c (id, status, rank, at, reason, detail, terminal, outputs)
        where j.id = c.id and j.status_rank < 10 and (c.terminal or j.updated_at <= c.at)
        returning j.kernel as Kernel, j.status as Status, extract(epoch from (j.completed_at - j.created_at))::float8 as Seconds
        """;

    /// <summary>One change of a job's row. <paramref name="Outputs"/>: a completion's outputs (JSON), written with it.</summary>
    private sealed record JobChange(string Id, string Status, DateTimeOffset At, string? Reason, string? Detail, string? Outputs = null);

    /// <summary>A job this update ended: counted in the submit-to-end histogram once its transaction has committed.</summary>
    private sealed record JobEnd(string Kernel, string Status, double? Seconds);

    private static void Record(IEnumerable<JobEnd> ends)
    {
        foreach (var end in ends)
        {
            if (end is { Seconds: { } seconds })
                GatewayMetrics.JobEnded(end.Kernel, end.Status, seconds);
        }
    }

    /// <summary>
    /// Splits <paramref name="changes"/> into rounds: the first change of every key, then the second of every key that
    /// has one, and so on, in the order given. A round holds each key once, so it can be one statement (an upsert may
    /// not touch a row twice, and an update joined to two changes of one row applies one of them), and applying the
    /// rounds in order applies each key's changes one after another, exactly as one statement per change would.
    /// </summary>
    private static List<List<T>> Rounds<T>(IEnumerable<T> changes, Func<T, string> key)
    {
        var rounds = new List<List<T>>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var change in changes)
        {
            var k = key(change);
            var round = seen.GetValueOrDefault(k);
            seen[k] = round + 1;
            if (round == rounds.Count)
                rounds.Add([]);
            rounds[round].Add(change);
        }
        return rounds;
    }

    /// <returns>The jobs these changes ended (a redelivery finds them ended and returns nothing).</returns>
    private static async Task<List<JobEnd>> AdvanceAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IEnumerable<JobChange> changes, CancellationToken ct)
    {
        var ends = new List<JobEnd>();
        foreach (var round in Rounds(changes, c => c.Id))
        {
            var rows = await connection.QueryAsync<JobEnd>(new CommandDefinition(Advance, new
            {
                ids = round.Select(c => c.Id).ToArray(),
                statuses = round.Select(c => c.Status).ToArray(),
                ranks = round.Select(c => JobStatuses.Rank(c.Status)).ToArray(),
                ats = round.Select(c => c.At).ToArray(),
                reasons = round.Select(c => c.Reason).ToArray(),
                details = round.Select(c => c.Detail).ToArray(),
                terminals = round.Select(c => JobStatuses.IsTerminal(c.Status)).ToArray(),
                outputs = round.Select(c => c.Outputs).ToArray(),
            }, tx, cancellationToken: ct));
            ends.AddRange(rows.Where(r => JobStatuses.IsTerminal(r.Status)));
        }
        return ends;
    }

    // An ended attempt keeps its status and the reason it ended with, and a live one never goes back: assigned, running,
    // submitted. Two batches of one job's changes can commit in either order (two run at once): a replica's start heard
    // after its result showed the attempt running for good once the job was cancelled (seen in an end-to-end test).
    private const string AttemptConflict = """
        on conflict (attempt_id) do update set
            status = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') then job_attempts.status
                          when array_position(array['assigned', 'running', 'submitted'], job_attempts.status)
                               > array_position(array['assigned', 'running', 'submitted'], excluded.status) then job_attempts.status
                          else excluded.status end,
            reason = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') and job_attempts.reason is not null
                          then job_attempts.reason else coalesce(excluded.reason, job_attempts.reason) end,
            detail = case when job_attempts.status in ('accepted', 'failed', 'rejected', 'cancelled', 'unverified') and job_attempts.reason is not null
                          then job_attempts.detail else coalesce(excluded.detail, job_attempts.detail) end,
            signature = coalesce(excluded.signature, job_attempts.signature), updated_at = greatest(job_attempts.updated_at, excluded.updated_at)
        """;

    private const string UpsertAttempts = """
        insert into job_attempts (attempt_id, job_id, worker_id, status, updated_at, reason, detail)
        select * from unnest(@attemptIds, @jobIds, @workerIds, @statuses, @ats, @reasons, @details)
        """ + "\n" + AttemptConflict;

    // Accepted attempts, with what a receipt needs of them (the same values on every redelivery), in one statement.
    private const string UpsertAccepted = """
        insert into job_attempts (attempt_id, job_id, worker_id, status, signature, updated_at, reason, detail, public_key, metrics, spot_check, accepted_index)
        select a.attempt_id, a.job_id, a.worker_id, 'accepted', a.signature, a.at, a.reason, a.detail, a.public_key, a.metrics::jsonb, a.spot_check, a.accepted_index
        from unnest(@attemptIds, @jobIds, @workerIds, @signatures, @ats, @reasons, @details, @publicKeys, @metrics, @spotChecks, @indexes)
            as a (attempt_id, job_id, worker_id, signature, at, reason, detail, public_key, metrics, spot_check, accepted_index)
        """ + "\n" + AttemptConflict + """
        , public_key = excluded.public_key, metrics = excluded.metrics, spot_check = excluded.spot_check, accepted_index = excluded.accepted_index
        """;

    /// <summary>One change of an attempt's row in the view.</summary>
    private sealed record AttemptChange(string AttemptId, string JobId, string WorkerId, string Status, DateTimeOffset At, string? Reason, string? Detail);

    private static async Task UpsertAttemptsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IEnumerable<AttemptChange> changes, CancellationToken ct)
    {
        foreach (var round in Rounds(changes, c => c.AttemptId))
        {
            await connection.ExecuteAsync(new CommandDefinition(UpsertAttempts, new
            {
                attemptIds = round.Select(c => c.AttemptId).ToArray(),
                jobIds = round.Select(c => c.JobId).ToArray(),
                workerIds = round.Select(c => c.WorkerId).ToArray(),
                statuses = round.Select(c => c.Status).ToArray(),
                ats = round.Select(c => c.At).ToArray(),
                reasons = round.Select(c => c.Reason).ToArray(),
                details = round.Select(c => c.Detail).ToArray(),
            }, tx, cancellationToken: ct));
        }
    }

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
        // rolls the whole batch back and it is delivered again, which applies nothing twice. Each table is written with a
        // statement per round (Rounds), not per change: a batch of hundreds of changes is a handful of statements.
        var changes = context.Message.Items().OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ThenBy(m => m.Version).ToList();
        await LockJobsAsync(connection, tx, changes.Select(m => m.JobId.Value), ct);
        await UpsertAttemptsAsync(connection, tx, changes.Where(m => m.AttemptId is not null && m.WorkerId is not null).Select(AttemptChangeOf), ct);
        await JobEventLog.AppendAsync(connection, tx, changes.Where(m => m.Version is not null).Select(m => new JobEventLog.Entry(m.JobId.Value, m.Version!.Value,
            m.Status, m.AttemptId?.Value, m.WorkerId?.Value, m.AttemptStatus, m.Reason, m.Detail, m.OccurredAt)).ToList(), ct);
        // Completion is recorded from JobCompleted, which carries the outputs.
        var ends = await AdvanceAsync(connection, tx, changes.Where(m => m.Status != JobStatuses.Completed)
            .Select(m => new JobChange(m.JobId.Value, m.Status, m.OccurredAt, m.Reason, m.Detail)), ct);
        await NotifyAsync(connection, tx, changes.Select(m => m.JobId.Value), ct);
        await tx.CommitAsync(ct);
        Record(ends);
    }

    private static AttemptChange AttemptChangeOf(JobStatusChanged m)
    {
        // A job queued again names the attempt that ended; a cancel names the one it stopped.
        var status = m.AttemptStatus ?? m.Status switch
        {
            "completed" => "accepted",
            "failed" or "queued" => "failed",
            "cancelled" => "cancelled",
            "running" => "running",
            _ => "assigned",
        };
        return new AttemptChange(m.AttemptId!.Value.Value, m.JobId.Value, m.WorkerId!.Value.Value, status, m.OccurredAt,
            Ended(status) ? m.AttemptReason ?? m.Reason : null,
            Ended(status) ? m.AttemptReason is null ? m.Detail : m.AttemptDetail : null);
    }

    public async Task Consume(ConsumeContext<JobRejected> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await JobEventLog.AppendAsync(connection, tx, [new JobEventLog.Entry(m.JobId.Value, JobEventLog.RejectedVersion, JobStatuses.Rejected, null, null, null,
            m.Reason, m.Detail, m.OccurredAt)], ct);
        var ends = await AdvanceAsync(connection, tx, [new JobChange(m.JobId.Value, JobStatuses.Rejected, m.OccurredAt, m.Reason, m.Detail)], ct);
        await NotifyAsync(connection, tx, [m.JobId.Value], ct);
        await tx.CommitAsync(ct);
        Record(ends);
    }

    public async Task Consume(ConsumeContext<Batch<Bundle<JobCompleted>>> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var completions = context.Message.Items().OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ToList();
        await LockJobsAsync(connection, tx, completions.Select(m => m.JobId.Value), ct);
        var accepted = completions.SelectMany(m => m.AcceptedAttempts().Select((a, index) => (Job: m, Attempt: a, Index: index)));
        foreach (var round in Rounds(accepted, a => a.Attempt.AttemptId.Value))
        {
            await connection.ExecuteAsync(new CommandDefinition(UpsertAccepted, new
            {
                attemptIds = round.Select(a => a.Attempt.AttemptId.Value).ToArray(),
                jobIds = round.Select(a => a.Job.JobId.Value).ToArray(),
                workerIds = round.Select(a => a.Attempt.WorkerId.Value).ToArray(),
                signatures = round.Select(a => a.Attempt.Signature).ToArray(),
                ats = round.Select(a => a.Job.OccurredAt).ToArray(),
                reasons = round.Select(a => a.Job.Reason ?? JobReasons.Accepted).ToArray(),
                details = round.Select(a => a.Job.Detail).ToArray(),
                publicKeys = round.Select(a => a.Attempt.PublicKey).ToArray(),
                metrics = round.Select(a => JsonSerializer.Serialize(a.Attempt.Metrics, PlatformJson.Options)).ToArray(),
                spotChecks = round.Select(a => a.Attempt.SpotCheck).ToArray(),
                indexes = round.Select(a => a.Index).ToArray(),
            }, tx, cancellationToken: ct));
        }
        var ends = await AdvanceAsync(connection, tx, completions.Select(m => new JobChange(m.JobId.Value, JobStatuses.Completed, m.OccurredAt,
            m.Reason ?? JobReasons.Accepted, m.Detail, JsonSerializer.Serialize(m.Outputs.ToDictionary(o => o.Key, o => o.Value.Value), PlatformJson.Options))), ct);
        await tx.CommitAsync(ct);
        Record(ends);
    }

    public async Task Consume(ConsumeContext<JobFailed> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        Record(await AdvanceAsync(connection, null, [new JobChange(m.JobId.Value, JobStatuses.Failed, m.OccurredAt, m.Reason, m.Detail)], context.CancellationToken));
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

