using Dapper;
using Npgsql;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// A worker that fails a job on its inputs (input_invalid, input_missing, input_corrupt) says the job can never
/// run; one node's word is not enough for that. The gateway checked at submission that every input is pinned, is
/// a tensor and fits the kernel's shapes, so a job that reached the scheduler passed the network's own validation:
/// a single node contradicting it is sent to a worker of another operator. The job fails on its inputs only when
/// a second operator's worker says so too. When no other operator's worker can look (a network of one operator), the
/// network reads the inputs from storage itself (<see cref="InputCheck"/>): the job fails only when that check agrees,
/// and a claim it contradicts costs the claimant at once. When another worker completes the job instead, the claim
/// was false: each claimant loses reputation and its trust streak for the kernel.
/// </summary>
public static class InputClaims
{
    public sealed record Verdict(bool Confirmed, bool AnotherOperatorCanLook, string? ConfirmedBy);

    private sealed record Claimant(string WorkerId, string Kernel);

    /// <summary>
    /// Records the claimant's operator on its attempt (so placement avoids that operator for this job) and decides:
    /// confirmed when a worker of another operator already claimed the same of this job.
    /// </summary>
    public static async Task<Verdict> JudgeAsync(NpgsqlTransaction tx, string jobId, string attemptId, string workerId, SchedulerOptions options,
        CancellationToken ct)
    {
        var connection = tx.Connection!;
        var @operator = await connection.ExecuteScalarAsync<string>(new CommandDefinition(
            """
            update attempts set operator_account_id = (select operator_account_id from workers where id = @workerId)
            where id = @attemptId returning operator_account_id
            """, new { workerId, attemptId }, tx, cancellationToken: ct));
        var confirmedBy = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            """
            select worker_id from attempts
            where job_id = @jobId and id <> @attemptId and status = 'failed' and reason = any(@reasons)
              and operator_account_id is not null and operator_account_id <> @operator
            order by assigned_at limit 1
            """, new { jobId, attemptId, @operator, reasons = AttemptFailedConsumer.PermanentReasons.ToArray() }, tx, cancellationToken: ct));
        if (confirmedBy is not null)
            return new Verdict(true, true, confirmedBy);
        // Any online, staked, reputable worker of an operator that has not claimed this job's inputs bad.
        var another = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            """
            select exists (select 1 from jobs j, workers w left join operator_stakes s on s.operator_account_id = w.operator_account_id
                           where j.id = @jobId and w.online and j.kernel = any(w.kernels)
                             and w.operator_account_id <> @operator
                             and w.operator_account_id not in (select a.operator_account_id from attempts a
                                                               where a.job_id = j.id and a.status = 'failed' and a.reason = any(@reasons)
                                                                 and a.operator_account_id is not null)
                             and (j.region is null or w.region = j.region) and (j.device = 'any' or j.device = any(w.device_kinds))
                             and w.memory_mb >= j.min_memory_mb
                             and coalesce(s.staked, 0) >= @MinimumStake and w.reputation >= @MinimumReputation)
            """, new { jobId, @operator, reasons = AttemptFailedConsumer.PermanentReasons.ToArray(), options.MinimumStake, options.MinimumReputation },
            tx, cancellationToken: ct));
        return new Verdict(false, another, null);
    }

    /// <summary>
    /// The job completed: every worker that failed it on its inputs was wrong. Called in the transaction that
    /// accepts the result.
    /// </summary>
    public static async Task DisprovedAsync(NpgsqlTransaction tx, string jobId, SchedulerOptions options, DateTimeOffset now, ILogger logger, CancellationToken ct)
    {
        var connection = tx.Connection!;
        var claimants = (await connection.QueryAsync<Claimant>(new CommandDefinition(
            """
            select distinct a.worker_id as WorkerId, j.kernel from attempts a join jobs j on j.id = a.job_id
            where a.job_id = @jobId and a.status = 'failed' and a.reason = any(@reasons)
            order by a.worker_id
            """, new { jobId, reasons = AttemptFailedConsumer.PermanentReasons.ToArray() }, tx, cancellationToken: ct))).ToList();
        if (claimants.Count == 0)
            return;
        await PenalizeAsync(tx, claimants.Select(c => c.WorkerId).ToList(), claimants[0].Kernel, options, now, ct);
        foreach (var claimant in claimants)
            logger.LogWarning("Job {JobId}: worker {WorkerId} failed it on its inputs, but another worker completed it: reputation lowered", jobId, claimant.WorkerId);
    }

    /// <summary>What a false input claim costs each of <paramref name="workerIds"/>: reputation, and its trust streak for the kernel.</summary>
    public static async Task PenalizeAsync(NpgsqlTransaction tx, IReadOnlyList<string> workerIds, string kernel, SchedulerOptions options, DateTimeOffset now,
        CancellationToken ct)
    {
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            "update workers set reputation = reputation * @factor where id = any(@ids)",
            new { factor = options.FalseClaimReputationFactor, ids = workerIds.ToArray() }, tx, cancellationToken: ct));
        await WorkerTrust.RecordAsync(tx, workerIds, kernel, accepted: false, compared: true, now, ct);
    }
}
