using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Hosting.Database;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Metrics;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Results are accepted only from the attempt that currently holds the job (the attempt id is the fencing
/// token); anything else is a stale or duplicated message and is dropped.
/// </summary>
/// <remarks>
/// Consumed in batches (<see cref="AttemptBatching"/>) with one commit for the batch (<see cref="GroupCommit"/>): a
/// node running many tiny jobs reports many starts at once. Handled in job order, as every batch here locks jobs.
/// </remarks>
public sealed class AttemptStartedConsumer(NpgsqlDataSource db, MessageOutbox outbox, TimeProvider clock, ILogger<AttemptStartedConsumer> logger)
    : IConsumer<Batch<AttemptStarted>>
{
    public async Task Consume(ConsumeContext<Batch<AttemptStarted>> context)
    {
        var ct = context.CancellationToken;
        var messages = (await NodeExchanges.KeepOwnAsync(context.Message, db, logger, ct)).DistinctBy(m => m.AttemptId).OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ToList();
        await GroupCommit.HandleAsync(db, outbox, messages, (tx, m) => HandleAsync(tx, m, ct), ct);
    }

    private async Task HandleAsync(NpgsqlTransaction tx, AttemptStarted m, CancellationToken ct)
    {
        if (await HolderKeys.KeyOfHolderAsync(tx, m.JobId, m.AttemptId, m.WorkerId, ct) is not { } holder)
            return;
        if (!WorkerMessageSignature.Verify(holder, m.Signature, WorkerMessageSignature.Payload(m)))
        {
            logger.LogWarning("Job {JobId}: AttemptStarted of attempt {AttemptId} dropped: not signed with the key worker {WorkerId} registered", m.JobId, m.AttemptId, m.WorkerId);
            await RejectedNodeMessages.CountAsync(db, RejectedNodeMessages.KeyMismatch, ct);
            return;
        }
        await MarkRunningAsync(tx, outbox, m.JobId, m.AttemptId, m.WorkerId, clock.GetUtcNow(), markAttempt: true, ct);
    }

    private sealed record RunningRow(bool Verifying, int Version);

    /// <summary>
    /// Moves the job from assigned to running (or verifying, when it already has a result) for the attempt that
    /// holds it, and says so on the job's stream; a job in any other state is left as it is. <paramref name="markAttempt"/>
    /// false leaves the attempt's own row to the caller, which gives it a later status in the same transaction. True when
    /// it made (and numbered) the change.
    /// </summary>
    internal static async Task<bool> MarkRunningAsync(NpgsqlTransaction tx, MessageOutbox outbox, JobId jobId, AttemptId attemptId, WorkerId workerId,
        DateTimeOffset now, bool markAttempt, CancellationToken ct)
    {
        var connection = tx.Connection!;
        // A job that already has a result is being verified, and shows so.
        // The change is numbered by the statement that makes it.
        var running = await connection.QuerySingleOrDefaultAsync<RunningRow>(new CommandDefinition(
            """
            update jobs set status = 'running', status_version = status_version + 1 where id = @JobId and attempt_id = @AttemptId and status = 'assigned'
            returning exists (select 1 from attempts a where a.job_id = jobs.id and a.status = 'submitted') as Verifying, status_version as Version
            """,
            new { JobId = jobId.Value, AttemptId = attemptId.Value }, tx, cancellationToken: ct));
        if (running is null)
            return false;
        var (isVerifying, version) = running;
        if (markAttempt)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update attempts set status = 'running' where id = @AttemptId", new { AttemptId = attemptId.Value }, tx, cancellationToken: ct));
        }
        await JobStatusEvents.EnqueueNumberedAsync(tx, outbox, version, new JobStatusChanged
        {
            JobId = jobId,
            Status = isVerifying ? "verifying" : "running",
            WorkerId = workerId,
            AttemptId = attemptId,
            AttemptStatus = "running",
            OccurredAt = now,
        }, ct: ct);
        return true;
    }
}

/// <summary>
/// Takes a result from the attempt that holds the job. The result must be signed with the key the worker
/// registered; it is kept on its attempt until the job has as many agreeing results as it needs (its replicas,
/// or two for a spot check), each from a different operator. Until then the job goes back to the queue for
/// another operator's worker; a disagreement gets a tie-breaking attempt; once enough agree they are accepted
/// and the results that disagree are rejected and their workers penalized.
/// </summary>
public sealed class AttemptCompletedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, ResultComparer comparer, SpotCheckDraw spotCheckDraw,
    IOptions<SchedulerOptions> options, TimeProvider clock, ILogger<AttemptCompletedConsumer> logger) : IConsumer<Batch<AttemptCompleted>>
{
    private sealed record Holder
    {
        public string ClientAccountId { get; init; } = "";
        public string Kernel { get; init; } = "";
        public string OperatorAccountId { get; init; } = "";
        public string? PublicKey { get; init; }
        public int ResultsNeeded { get; init; }
        public bool SpotCheck { get; init; }
        public int AttemptCount { get; init; }
        public string Status { get; init; } = "";
        public double? EstimatedGflop { get; init; }
        public double PowerWatts { get; init; }
        public int Slots { get; init; }
        public double? KernelGflops { get; init; }
        public DateTime AssignedAt { get; init; }
        public int? KernelRevision { get; init; }
        /// <summary>The worker's run of accepted results for the kernel (<see cref="WorkerTrust"/>): how likely a spot check is.</summary>
        public int Streak { get; init; }
        /// <summary>A spot check was due but no other operator's worker can run the job: accepted unverified, without mint.</summary>
        public bool Unverifiable { get; init; }
        /// <summary>
        /// The job's status version as this transaction left it: read with the row's lock, and counted up by each change
        /// numbered here, so the completion's number is known before the statement that writes it.
        /// </summary>
        public int StatusVersion { get; init; }
    }

    private sealed class Result
    {
        public string AttemptId { get; init; } = "";
        public string WorkerId { get; init; } = "";
        public string OperatorAccountId { get; init; } = "";
        public string Outputs { get; init; } = "{}";
        public string Metrics { get; init; } = "{}";
        public string? Signature { get; init; }
        public string? PublicKey { get; init; }
        public double? CheckedJoules { get; init; }
        /// <summary>The kernel revision its worker announced when the attempt was assigned: how it is compared.</summary>
        public int? KernelRevision { get; init; }
        public DateTime AssignedAt { get; init; }
        /// <summary>Written accepted by the statement that recorded it: a result that needs no other is accepted as it arrives.</summary>
        public bool WrittenAccepted { get; init; }

        public ResultComparer.Outputs Compared => new(AttemptId, KernelRevision, OutputCids);

        public IReadOnlyDictionary<string, Cid> OutputCids => JsonSerializer.Deserialize<Dictionary<string, Cid>>(Outputs, PlatformJson.Options)!;
    }

    /// <summary>
    /// In batches (<see cref="AttemptBatching"/>) with one commit for the batch (<see cref="GroupCommit"/>), in job order:
    /// the results of a node's many tiny jobs, and the hot rows they all update (the worker's trust, energy and speed),
    /// are written by one transaction rather than by many queued behind each other's locks.
    /// </summary>
    public async Task Consume(ConsumeContext<Batch<AttemptCompleted>> context)
    {
        var ct = context.CancellationToken;
        var messages = (await NodeExchanges.KeepOwnAsync(context.Message, db, logger, ct)).DistinctBy(m => m.AttemptId).OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ToList();
        await GroupCommit.HandleAsync(db, outbox, messages, (tx, m) => HandleAsync(tx, m, ct), ct);
        dispatcher.Poke();
    }

    private async Task HandleAsync(NpgsqlTransaction tx, AttemptCompleted m, CancellationToken ct)
    {
        var o = options.Value;
        var connection = tx.Connection!;
        var holder = await connection.QuerySingleOrDefaultAsync<Holder>(new CommandDefinition(
            """
            select j.client_account_id as ClientAccountId, j.kernel, w.operator_account_id as OperatorAccountId, w.public_key as PublicKey,
                   j.results_needed as ResultsNeeded, j.spot_check as SpotCheck, j.attempt_count as AttemptCount, j.status,
                   j.estimated_gflop as EstimatedGflop, w.power_watts as PowerWatts, w.slots, (w.gflops->>j.kernel)::float8 as KernelGflops,
                   a.assigned_at as AssignedAt, a.kernel_revision as KernelRevision, coalesce(t.streak, 0) as Streak,
                   j.status_version as StatusVersion
            from jobs j join workers w on w.id = j.worker_id join attempts a on a.id = j.attempt_id
                 left join worker_trust t on t.worker_id = w.id and t.kernel = j.kernel
            where j.id = @JobId and j.attempt_id = @AttemptId and j.worker_id = @WorkerId and j.status in ('assigned', 'running')
            for update of j
            """, new { JobId = m.JobId.Value, AttemptId = m.AttemptId.Value, WorkerId = m.WorkerId.Value }, tx, cancellationToken: ct));
        if (holder is null)
            return;

        var now = clock.GetUtcNow();
        if (!ResultSignature.Verify(holder.PublicKey, m.Signature, m.JobId, m.AttemptId, m.Outputs))
        {
            logger.LogWarning("Job {JobId}: result of attempt {AttemptId} rejected: not signed with the key worker {WorkerId} registered", m.JobId, m.AttemptId, m.WorkerId);
            await RejectedNodeMessages.CountAsync(db, RejectedNodeMessages.KeyMismatch, ct);
            await JobStore.EndAttemptAsync(tx, outbox, m.JobId, m.AttemptId, "signature_invalid",
                $"the result is not signed with the key worker {m.WorkerId} registered", retry: true, o.MaxAttempts, now, ct);
            await WorkerTrust.RecordAsync(tx, [m.WorkerId.Value], holder.Kernel, accepted: false, compared: false, now, ct);
            return;
        }
        // A single-replica result is checked by another operator's worker as the worker's trust for this kernel says.
        if (o.SpotChecks && holder is { ResultsNeeded: 1, SpotCheck: false } && spotCheckDraw.Picks(m.JobId, SpotChecks.Probability(holder.Streak, o)))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update jobs set results_needed = 2, spot_check = true where id = @JobId", new { JobId = m.JobId.Value }, tx, cancellationToken: ct));
            holder = holder with { ResultsNeeded = 2, SpotCheck = true };
        }

        // A result proves its attempt ran: if the worker's AttemptStarted is still on its way (the two travel
        // separately), was lost or never sent (a tiny job's start is not), the job's history still shows it running
        // before it ends. A result accepted alone has its running change numbered and written with its completion.
        var acceptedAlone = holder.ResultsNeeded <= 1;
        if (holder.Status == "assigned" && !acceptedAlone
            && await AttemptStartedConsumer.MarkRunningAsync(tx, outbox, m.JobId, m.AttemptId, m.WorkerId, now, markAttempt: false, ct)) // its attempt is written below
            holder = holder with { StatusVersion = holder.StatusVersion + 1 };

        // The node's figures are kept as statistics, bounded; its joules are checked against the wall time this
        // scheduler measured, from the attempt's assignment to now, both by its own clock.
        var metrics = AttemptFigures.Bound(m.Metrics);
        var wall = now - new DateTimeOffset(DateTime.SpecifyKind(holder.AssignedAt, DateTimeKind.Utc));
        var submitted = new Result
        {
            AttemptId = m.AttemptId.Value,
            WorkerId = m.WorkerId.Value,
            OperatorAccountId = holder.OperatorAccountId,
            Outputs = JsonSerializer.Serialize(m.Outputs, PlatformJson.Options),
            Metrics = JsonSerializer.Serialize(metrics, PlatformJson.Options),
            Signature = m.Signature,
            PublicKey = holder.PublicKey,
            CheckedJoules = EnergyClaims.Check(metrics.Joules, AttemptFigures.JobGflop(holder.EstimatedGflop),
                new EnergyClaims.Calibration(holder.PowerWatts, holder.Slots, holder.KernelGflops), wall),
            KernelRevision = holder.KernelRevision,
            AssignedAt = holder.AssignedAt,
            // Most jobs need one result: this one, accepted below with no other to compare. Jobs being verified keep it
            // submitted until enough agree.
            WrittenAccepted = acceptedAlone,
        };
        var recordResult = new NpgsqlBatchCommand(
            """
            update attempts set status = case when @WrittenAccepted then 'accepted' else 'submitted' end, finished_at = @now, operator_account_id = @OperatorAccountId,
                outputs = @Outputs::jsonb, metrics = @Metrics::jsonb, signature = @Signature, checked_joules = @CheckedJoules
            where id = @AttemptId
            """)
        {
            Parameters =
            {
                new("now", now), new("WrittenAccepted", submitted.WrittenAccepted), new("OperatorAccountId", submitted.OperatorAccountId),
                new("Outputs", submitted.Outputs), new("Metrics", submitted.Metrics),
                new("Signature", NpgsqlDbType.Text) { Value = (object?)submitted.Signature ?? DBNull.Value },
                new("CheckedJoules", NpgsqlDbType.Double) { Value = (object?)submitted.CheckedJoules ?? DBNull.Value },
                new("AttemptId", submitted.AttemptId),
            },
        };
        // A result accepted alone (always accepted below: one result, at most one needed) is written by the accept, in its
        // round trip; one that waits for others is written now, for the lookup of the job's results below to find.
        if (!acceptedAlone)
            await Statements.ExecuteAsync(tx, recordResult, ct);
        // Only jobs being verified look up the results before this one.
        var results = acceptedAlone ? [submitted] : (await connection.QueryAsync<Result>(new CommandDefinition(
            """
            select a.id as AttemptId, a.worker_id as WorkerId, a.operator_account_id as OperatorAccountId, a.outputs::text as Outputs,
                   a.metrics::text as Metrics, a.signature, w.public_key as PublicKey, a.checked_joules as CheckedJoules,
                   a.kernel_revision as KernelRevision, a.assigned_at as AssignedAt
            from attempts a left join workers w on w.id = a.worker_id
            where a.job_id = @JobId and a.status = 'submitted' order by a.assigned_at, a.id
            """, new { JobId = m.JobId.Value }, tx, cancellationToken: ct))).ToList();

        var agreeing = await LargestAgreeingGroupAsync(m.JobId, results, ct);
        if (agreeing.Count >= holder.ResultsNeeded)
            await AcceptAsync(tx, m.JobId, holder, agreeing, results.Except(agreeing).ToList(), now, ct, startedWith: holder.Status == "assigned" && acceptedAlone,
                recorded: acceptedAlone ? recordResult : null);
        else if (holder.SpotCheck && results.Count == 1 && !await AnotherOperatorCanRunAsync(tx, m.JobId, holder, ct))
        {
            // A spot check needs a second operator; a network where no other can run the kernel at all delivers
            // the result rather than wait forever, but an unverified result earns no mint and builds no trust.
            await AcceptAsync(tx, m.JobId, holder with { ResultsNeeded = 1, Unverifiable = true }, agreeing, [], now, ct);
        }
        else if (holder.AttemptCount < o.MaxAttempts * holder.ResultsNeeded)
            await AwaitAnotherResultAsync(tx, m, results.Count, holder.ResultsNeeded, now, ct);
        else
        {
            var detail = $"Only {agreeing.Count} of the {results.Count} results from different operators' workers agreed after {holder.AttemptCount} attempts; {holder.ResultsNeeded} had to, so none was accepted and the credits were refunded.";
            await connection.ExecuteAsync(new CommandDefinition(
                "update attempts set status = 'unverified' where job_id = @JobId and status = 'submitted'", new { JobId = m.JobId.Value }, tx, cancellationToken: ct));
            var unverified = results.Count;
            outbox.AfterCommit(tx, () => SchedulerMetrics.AttemptsEnded("unverified", JobReasons.VerificationFailed, unverified));
            // Nobody can tell which results were right: every worker involved proves itself again.
            await WorkerTrust.RecordAsync(tx, results.Select(r => r.WorkerId).Distinct().ToList(), holder.Kernel, accepted: false, compared: true, now, ct);
            await JobStore.FailAsync(tx, outbox, m.JobId, AccountId.From(holder.ClientAccountId), m.WorkerId, m.AttemptId, JobReasons.VerificationFailed, detail, now, ct);
        }
    }

    /// <summary>The results that agree with the one most others agree with (the earliest on a tie), in attempt order.</summary>
    private async Task<List<Result>> LargestAgreeingGroupAsync(JobId jobId, List<Result> results, CancellationToken ct)
    {
        if (results.Count == 1)
            return results;
        var agree = new bool[results.Count, results.Count];
        for (var i = 0; i < results.Count; i++)
        {
            agree[i, i] = true;
            for (var j = i + 1; j < results.Count; j++)
                agree[i, j] = agree[j, i] = await comparer.AgreeAsync(jobId, results[i].Compared, results[j].Compared, ct);
        }
        return Enumerable.Range(0, results.Count)
            .Select(i => Enumerable.Range(0, results.Count).Where(j => agree[i, j]).Select(j => results[j]).ToList())
            .MaxBy(group => group.Count)!;
    }

    // Any online, staked, reputable worker of another operator that can run the job's kernel with its memory, in
    // any region and on any device: the check is the network's, so the job's region and device pins do not bind
    // it (the dispatcher places a check outside them when nobody inside can take it).
    private async Task<bool> AnotherOperatorCanRunAsync(NpgsqlTransaction tx, JobId jobId, Holder holder, CancellationToken ct) =>
        await tx.Connection!.ExecuteScalarAsync<bool>(new CommandDefinition(
            """
            select exists (select 1 from jobs j, workers w left join operator_stakes s on s.operator_account_id = w.operator_account_id
                           where j.id = @JobId and w.online and w.operator_account_id <> @Operator and j.kernel = any(w.kernels)
                             and w.memory_mb >= j.min_memory_mb
                             and coalesce(s.staked, 0) >= @MinimumStake and w.reputation >= @MinimumReputation)
            """, new { JobId = jobId.Value, Operator = holder.OperatorAccountId, options.Value.MinimumStake, options.Value.MinimumReputation }, tx, cancellationToken: ct));

    /// <summary>Back to the queue for another operator's worker; the job shows as verifying from its first result on.</summary>
    private async Task AwaitAnotherResultAsync(NpgsqlTransaction tx, AttemptCompleted m, int results, int needed, DateTimeOffset now, CancellationToken ct)
    {
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            "update jobs set status = 'queued', worker_id = null, attempt_id = null, lease_deadline = null where id = @JobId",
            new { JobId = m.JobId.Value }, tx, cancellationToken: ct));
        await JobStatusEvents.EnqueueAsync(tx, outbox, new JobStatusChanged
        {
            JobId = m.JobId,
            Status = "verifying",
            WorkerId = m.WorkerId,
            AttemptId = m.AttemptId,
            AttemptStatus = "submitted",
            Detail = results < needed ? $"{results} of {needed} results in; waiting for another operator's worker" : "the results disagree; a tie-breaking attempt decides",
            OccurredAt = now,
        }, ct: ct);
    }

    /// <summary>
    /// Accepts the agreeing results and completes the job. <paramref name="startedWith"/>: the job was still assigned, and
    /// its running change is numbered and queued with the completion, by the same statements. <paramref name="recorded"/>:
    /// the statement recording the result being accepted, when it has not run yet. Everything but the rejected results'
    /// own changes and the rare input-claim lookup goes to the database in one round trip.
    /// </summary>
    private async Task AcceptAsync(NpgsqlTransaction tx, JobId jobId, Holder holder, List<Result> accepted, List<Result> rejected, DateTimeOffset now, CancellationToken ct,
        bool startedWith = false, NpgsqlBatchCommand? recorded = null)
    {
        var connection = tx.Connection!;
        var o = options.Value;
        var first = accepted[0];
        var verified = holder.ResultsNeeded > 1;
        var (reason, because) = HowAccepted(holder, accepted);
        var (acceptedCount, rejectedCount) = (accepted.Count, rejected.Count);
        outbox.AfterCommit(tx, () =>
        {
            SchedulerMetrics.AttemptsEnded("accepted", reason, acceptedCount);
            SchedulerMetrics.AttemptsEnded("rejected", JobReasons.VerificationFailed, rejectedCount);
        });

        // The rejected results' changes are numbered before the completion, which is the job's last change: exactly one
        // per rejected result (JobStatusEvents.EnqueueAsync below), as the completion's count (`before`) assumes.
        var detail = $"the result disagreed with {accepted.Count} agreeing result(s) from other operators' workers";
        foreach (var loser in rejected)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update attempts set status = 'rejected', reason = 'verification_failed', detail = @detail where id = @id",
                new { detail, id = loser.AttemptId }, tx, cancellationToken: ct));
            await connection.ExecuteAsync(new CommandDefinition(
                "update workers set reputation = reputation * @factor where id = @id",
                new { factor = o.PenaltyReputationFactor, id = loser.WorkerId }, tx, cancellationToken: ct));
            // Told while the job is still verifying: its completion follows in this transaction.
            await JobStatusEvents.EnqueueAsync(tx, outbox, new JobStatusChanged
            {
                JobId = jobId,
                Status = "verifying",
                WorkerId = WorkerId.From(loser.WorkerId),
                AttemptId = AttemptId.From(loser.AttemptId),
                AttemptStatus = "rejected",
                Reason = "verification_failed",
                Detail = detail,
                OccurredAt = now,
            }, ct: ct);
            await outbox.EnqueueAsync(tx, new WorkerPenalized
            {
                JobId = jobId,
                AttemptId = AttemptId.From(loser.AttemptId),
                WorkerId = WorkerId.From(loser.WorkerId),
                OperatorAccountId = AccountId.From(loser.OperatorAccountId),
                Reason = "verification_failed",
                Detail = detail,
                OccurredAt = now,
            }, ct: ct);
            logger.LogWarning("Job {JobId}: worker {WorkerId} penalized: {Detail}", jobId, loser.WorkerId, detail);
        }

        var writes = new List<NpgsqlBatchCommand?> { recorded };
        var toAccept = accepted.Where(r => !r.WrittenAccepted).Select(r => r.AttemptId).ToArray();
        if (toAccept.Length > 0)
            writes.Add(new NpgsqlBatchCommand("update attempts set status = 'accepted' where id = any(@ids)") { Parameters = { new("ids", toAccept) } });
        if (verified)
        {
            writes.Add(new NpgsqlBatchCommand("update workers set reputation = least(1.0, reputation + @gain) where id = any(@ids)")
            {
                Parameters = { new("gain", o.VerifiedReputationGain), new("ids", accepted.Select(r => r.WorkerId).ToArray()) },
            });
        }
        var compared = accepted.Count + rejected.Count > 1;
        // An unverifiable result proves nothing about its worker: its streak stays where it was.
        if (!holder.Unverifiable)
            writes.Add(WorkerTrust.Record(accepted.Select(r => r.WorkerId).Distinct().ToList(), holder.Kernel, accepted: true, compared, now));
        writes.Add(WorkerTrust.Record(rejected.Select(r => r.WorkerId).Distinct().ToList(), holder.Kernel, accepted: false, compared: true, now));

        // The client pays for the replicas it asked for; a spot check's extra attempt is the network's. The work
        // each attempt did is the job's GFLOP as the network estimated it, never the node's figure.
        var paid = holder.SpotCheck ? 1 : holder.ResultsNeeded;
        var gflop = AttemptFigures.JobGflop(holder.EstimatedGflop);
        var acceptedAttempts = accepted.Select((r, i) => new AcceptedAttempt
        {
            AttemptId = AttemptId.From(r.AttemptId),
            WorkerId = WorkerId.From(r.WorkerId),
            OperatorAccountId = AccountId.From(r.OperatorAccountId),
            Metrics = AttemptFigures.Bound(JsonSerializer.Deserialize<AttemptMetrics>(r.Metrics, PlatformJson.Options)!) with { Gflop = gflop },
            Signature = r.Signature,
            PublicKey = r.PublicKey,
            SpotCheck = i >= paid,
            CheckedJoules = r.CheckedJoules,
            MintWithheld = holder.Unverifiable,
        }).ToList();
        writes.Add(WorkerEnergy.Record(holder.Kernel, gflop, acceptedAttempts, now));
        // Only an attempt that ran SpeedSampleMinimumTime from assignment to result can give a sample (RecordSpeed
        // also takes off the input transfer): a tiny job's cannot, and its acceptance skips the statement. It reads the
        // attempts' finished_at, written above in the same round trip.
        writes.Add(WorkerClaims.RecordSpeed(accepted.Where(r => now - new DateTimeOffset(DateTime.SpecifyKind(r.AssignedAt, DateTimeKind.Utc)) >= o.SpeedSampleMinimumTime)
            .Select(r => r.AttemptId).ToList(), o, now));

        var top = acceptedAttempts[0];
        var completed = new JobCompleted
        {
            JobId = jobId,
            ClientAccountId = AccountId.From(holder.ClientAccountId),
            AttemptId = top.AttemptId,
            WorkerId = top.WorkerId,
            OperatorAccountId = top.OperatorAccountId,
            Kernel = holder.Kernel,
            Outputs = first.OutputCids,
            Metrics = top.Metrics,
            Signature = top.Signature,
            Accepted = acceptedAttempts,
            Reason = reason,
            Detail = because,
            OccurredAt = now,
        };
        // Numbered after the rejected results' changes: the completion is the job's last change (the running change
        // before it, when the job starts and ends here). The statement checks the version it counts from, so a change
        // numbered here and not counted fails the transaction rather than reuse a number. The completion itself is
        // kept, to be announced again if rewards never got it.
        var before = holder.StatusVersion + rejected.Count;
        var version = before + (startedWith ? 2 : 1);
        var complete = new NpgsqlBatchCommand(
            """
            update jobs set status = 'completed', outputs = @Outputs::jsonb, finished_at = @now, reason = @reason, detail = @because,
                            status_version = @version, completion = @completion
            where id = @jobId and status_version = @before
            """)
        {
            Parameters =
            {
                new("Outputs", first.Outputs), new("now", now), new("reason", reason), new("because", because), new("version", version),
                new("completion", JsonSerializer.Serialize(completed, PlatformJson.Options)), new("jobId", jobId.Value), new("before", before),
            },
        };
        writes.Add(complete);
        var completion = new JobStatusChanged
        {
            JobId = jobId,
            Status = "completed",
            WorkerId = top.WorkerId,
            AttemptId = top.AttemptId,
            AttemptStatus = "accepted",
            Reason = reason,
            Detail = because,
            OccurredAt = now,
            Version = version,
        };
        List<object> messages = startedWith
            ? [completion with { Status = "running", AttemptStatus = "running", Reason = null, Detail = null, Version = version - 1 }, completion, completed]
            : [completion, completed];
        var staged = outbox.Stage(tx, [.. messages.Select(m => new MessageOutbox.Outgoing(m))]);
        writes.Add(staged.Command);

        await using (var batch = new NpgsqlBatch(connection, tx))
        {
            foreach (var write in writes.OfType<NpgsqlBatchCommand>())
                batch.BatchCommands.Add(write);
            await using var reader = await batch.ExecuteReaderAsync(ct);
            // The outbox's insert is the one statement that returns rows, and the last.
            while (reader.FieldCount == 0 && await reader.NextResultAsync(ct))
            {
            }
            await staged.ReadAsync(reader, ct);
            while (await reader.NextResultAsync(ct))
            {
            }
        }
        if (complete.RecordsAffected != 1)
            throw new InvalidOperationException($"Job {jobId}: not at status version {before} when its completion was written: the acceptance is rolled back");

        // Only a job that had more attempts than accepted results can hold a failed one, let alone an input claim:
        // the usual job (one attempt, one result) skips the lookup on the accept path.
        if (holder.AttemptCount > accepted.Count)
            await InputClaims.DisprovedAsync(tx, jobId.Value, o, now, logger, ct);
    }

    /// <summary>The completion's reason and sentence: one result, agreeing replicas, or a spot check that agreed.</summary>
    private static (string Reason, string Detail) HowAccepted(Holder holder, List<Result> accepted)
    {
        var workers = string.Join(", ", accepted.Select(r => r.WorkerId));
        if (holder.SpotCheck && accepted.Count > 1)
            return (JobReasons.SpotChecked, $"Worker {accepted[0].WorkerId} ran the job and worker {accepted[1].WorkerId} of another operator ran it again as a spot check; the results agreed.");
        if (holder.SpotCheck)
            return (JobReasons.Accepted, $"Accepted the signed result of worker {accepted[0].WorkerId}; it was picked for a spot check, but no other operator's worker could run it, so it earns no mint.");
        if (accepted.Count > 1)
            return (JobReasons.Verified, $"{accepted.Count} replicas from different operators agreed (workers {workers}).");
        return (JobReasons.Accepted, $"Accepted the signed result of worker {accepted[0].WorkerId}.");
    }
}

/// <summary>
/// A failure a worker blames on the job's own inputs fails the job only once a worker of another operator says
/// the same (<see cref="InputClaims"/>): until then the job goes to another operator's worker. When there is no
/// other operator to ask, the network checks the inputs itself (<see cref="InputCheck"/>). Any other failure
/// gives the job to another worker until it has had its attempts.
/// </summary>
public sealed class AttemptFailedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, InputCheck inputCheck, IOptions<SchedulerOptions> options,
    TimeProvider clock, ILogger<AttemptFailedConsumer> logger)
    : IConsumer<AttemptFailed>
{
    public static readonly IReadOnlySet<string> PermanentReasons = new HashSet<string> { "input_invalid", "input_missing", "input_corrupt" };

    /// <summary>The network's own look at the inputs: its finding, or null when storage could not answer.</summary>
    private sealed record NetworkCheck(InputCheck.Finding? Finding, string Kernel);

    public async Task Consume(ConsumeContext<AttemptFailed> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        // An input claim nobody of another operator can confirm is checked by the network against storage. That
        // reads over HTTP, so it happens here, before the transaction that decides, never while holding the job's row.
        var check = PermanentReasons.Contains(m.Reason) ? await CheckInputsIfAloneAsync(m, ct) : null;

        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // Only the worker holding the attempt may end it, and only with its registered key: a forged failure
        // would otherwise take a job from an honest worker (or fail it outright with an input reason). A redelivery
        // after the attempt ended finds no holder and changes nothing.
        if (await HolderKeys.KeyOfHolderAsync(tx, m.JobId, m.AttemptId, m.WorkerId, ct) is not { } holder)
            return;
        if (!WorkerMessageSignature.Verify(holder, m.Signature, WorkerMessageSignature.Payload(m)))
        {
            logger.LogWarning("Job {JobId}: AttemptFailed of attempt {AttemptId} dropped: not signed with the key worker {WorkerId} registered", m.JobId, m.AttemptId, m.WorkerId);
            await RejectedNodeMessages.CountAsync(db, RejectedNodeMessages.KeyMismatch, ct);
            return;
        }
        var retry = true;
        var reason = m.Reason;
        var detail = m.Detail;
        if (PermanentReasons.Contains(m.Reason))
        {
            var verdict = await InputClaims.JudgeAsync(tx, m.JobId.Value, m.AttemptId.Value, m.WorkerId.Value, options.Value, ct);
            if (verdict.Confirmed)
            {
                retry = false;
                detail = $"{m.Detail} (confirmed by worker {verdict.ConfirmedBy} of another operator)";
                logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs ({Reason}: {Detail}); confirmed by another operator's worker, the job fails",
                    m.JobId, m.WorkerId, m.Reason, m.Detail);
            }
            else if (verdict.AnotherOperatorCanLook)
            {
                detail = $"{m.Detail} (not confirmed: the job goes to a worker of another operator)";
                logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs ({Reason}: {Detail}); to be confirmed by another operator's worker",
                    m.JobId, m.WorkerId, m.Reason, m.Detail);
            }
            else
            {
                (retry, reason, detail) = await JudgedByTheNetworkAsync(tx, m, check, now, ct);
            }
        }
        var changed = await JobStore.EndAttemptAsync(tx, outbox, m.JobId, m.AttemptId, reason, detail,
            retry, options.Value.MaxAttempts, now, ct);
        await outbox.CommitAsync(tx, ct);
        if (changed)
            dispatcher.Poke();
    }

    /// <summary>
    /// Whether the claim stands alone (held by its sender, signed, no other operator's worker can look) and, if so,
    /// the network's own check of the job's inputs. The short transaction that decides this is rolled back before
    /// storage is asked; the deciding transaction looks again.
    /// </summary>
    private async Task<NetworkCheck?> CheckInputsIfAloneAsync(AttemptFailed m, CancellationToken ct)
    {
        string specJson;
        await using (var connection = await db.OpenConnectionAsync(ct))
        await using (var tx = await connection.BeginTransactionAsync(ct))
        {
            if (await HolderKeys.KeyOfHolderAsync(tx, m.JobId, m.AttemptId, m.WorkerId, ct) is not { } holder
                || !WorkerMessageSignature.Verify(holder, m.Signature, WorkerMessageSignature.Payload(m)))
                return null; // the deciding transaction drops it
            var verdict = await InputClaims.JudgeAsync(tx, m.JobId.Value, m.AttemptId.Value, m.WorkerId.Value, options.Value, ct);
            if (verdict.Confirmed || verdict.AnotherOperatorCanLook)
                return null;
            specJson = await connection.ExecuteScalarAsync<string>(new CommandDefinition(
                "select spec::text from jobs where id = @id", new { id = m.JobId.Value }, tx, cancellationToken: ct)) ?? "{}";
            await tx.RollbackAsync(ct);
        }
        var spec = JsonSerializer.Deserialize<JobSpec>(specJson, PlatformJson.Options)!;
        try
        {
            return new(await inputCheck.CheckAsync(spec, hashEveryInput: m.Reason == JobReasons.InputCorrupt, ct), spec.Kernel);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            logger.LogWarning("Job {JobId}: could not read its inputs from storage to check worker {WorkerId}'s {Reason} claim: {Error}", m.JobId, m.WorkerId, m.Reason, ex.Message);
            return new(null, spec.Kernel);
        }
    }

    /// <summary>
    /// A claim no other operator's worker can confirm, decided by the network's own check: agreed, the job fails with
    /// what the network found; contradicted, the claimant pays as for a claim a completion disproves and the job is
    /// queued again (another worker first, the claimant only when no other fits); unchecked (storage did not answer),
    /// the job is queued again and nobody pays. Neither of the last two ends are an input reason, so placement does not
    /// exclude the claimant's operator (in a network of one operator that would leave the job nowhere to go).
    /// </summary>
    private async Task<(bool Retry, string Reason, string Detail)> JudgedByTheNetworkAsync(NpgsqlTransaction tx, AttemptFailed m, NetworkCheck? check,
        DateTimeOffset now, CancellationToken ct)
    {
        if (check?.Finding is not { } finding)
        {
            // Storage did not answer, or the network changed between the look and now (the other operator's worker
            // went away): the claim is not believed, and the job is not failed on it.
            logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs ({Reason}: {Detail}); the network could not check, the job is queued again",
                m.JobId, m.WorkerId, m.Reason, m.Detail);
            return (true, JobReasons.InputClaimUnchecked, $"worker reported {m.Reason}: {m.Detail}; storage could not be read to check it");
        }
        if (finding.Reason is { } found)
        {
            logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs ({Reason}: {Detail}); the network's own check agrees ({Found}: {Finding}), the job fails",
                m.JobId, m.WorkerId, m.Reason, m.Detail, found, finding.Detail);
            return (false, found, $"{finding.Detail} (checked by the network after worker {m.WorkerId} reported {m.Reason})");
        }
        await InputClaims.PenalizeAsync(tx, [m.WorkerId.Value], check.Kernel, options.Value, now, ct);
        logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs ({Reason}: {Detail}), but the network's own check found {Finding}: reputation lowered, the job is queued again",
            m.JobId, m.WorkerId, m.Reason, m.Detail, finding.Detail);
        return (true, JobReasons.InputClaimDisproved, $"worker reported {m.Reason}: {m.Detail}; the network read the inputs from storage and {finding.Detail}");
    }
}

/// <summary>How the attempts' results and starts are batched.</summary>
public static class AttemptBatching
{
    /// <summary>
    /// Up to 100 messages a batch, one batch of each at a time: every batch locks jobs in id order, and two batches of
    /// completions would queue on the same workers' trust and energy rows anyway.
    /// </summary>
    public static readonly MessageBatching Default = new(100, MessageBatching.DefaultQuiet, 1);
}

/// <summary>The registered key of the worker holding an attempt, for checking the messages it sends about it.</summary>
internal static class HolderKeys
{
    /// <summary>
    /// Null when <paramref name="worker"/> does not hold <paramref name="attemptId"/> of the job (a stale or
    /// misdirected message: nothing to do), else the worker's registered key, "" when it registered none.
    /// </summary>
    public static Task<string?> KeyOfHolderAsync(NpgsqlTransaction tx, JobId jobId, AttemptId attemptId, WorkerId worker, CancellationToken ct) =>
        tx.Connection!.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            """
            select coalesce(w.public_key, '') from jobs j join workers w on w.id = j.worker_id
            where j.id = @JobId and j.attempt_id = @AttemptId and j.worker_id = @WorkerId and j.status in ('assigned', 'running')
            for update of j
            """, new { JobId = jobId.Value, AttemptId = attemptId.Value, WorkerId = worker.Value }, tx, cancellationToken: ct));
}
