using Dapper;
using Npgsql;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Minting;

/// <summary>
/// Energy per GFLOP of accepted attempts. An attempt that used less than the network median of the most recent
/// attempts is minted a bonus (<see cref="Escrow.PricingOptions.EfficiencyBonus"/>): the network rewards the
/// nodes that do the same work for less energy. Only joules the scheduler checked against the worker's calibrated
/// power and its own measured wall time count (<see cref="AcceptedAttempt.CheckedJoules"/>), per GFLOP of the
/// network's own estimate: attempts without a checked figure (none, zero or implausible) neither count nor earn it.
/// </summary>
public static class EfficiencyBonus
{
    /// <summary>Checked joules per GFLOP of the job's estimate, or null without a positive finite figure of each.</summary>
    public static double? JoulesPerGflop(double? checkedJoules, double networkGflop) =>
        checkedJoules is { } joules && double.IsFinite(joules) && joules > 0 && double.IsFinite(networkGflop) && networkGflop > 0
            && joules / networkGflop is var perGflop && double.IsFinite(perGflop) ? perGflop : null;

    /// <summary>The median joules per GFLOP of the last <paramref name="window"/> recorded attempts; null with no history.</summary>
    public static Task<double?> NetworkMedianAsync(NpgsqlTransaction tx, int window, CancellationToken ct) =>
        tx.Connection!.ExecuteScalarAsync<double?>(new CommandDefinition(
            """
            select percentile_cont(0.5) within group (order by joules_per_gflop)
            from (select joules_per_gflop from attempt_energy order by seq desc limit @window) recent
            """, new { window }, tx, cancellationToken: ct));

    /// <summary>Adds accepted attempts to the history with one statement, each once, in the order given.</summary>
    public static Task RecordManyAsync(NpgsqlTransaction tx, IReadOnlyList<(string JobId, AcceptedAttempt Attempt, double JoulesPerGflop)> attempts, CancellationToken ct) =>
        attempts.Count == 0 ? Task.CompletedTask : tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into attempt_energy (attempt_id, job_id, worker_id, operator_account_id, joules_per_gflop, joules_estimated)
            select a.attempt_id, a.job_id, a.worker_id, a.operator_account_id, a.joules_per_gflop, a.joules_estimated
            from unnest(@attemptIds::text[], @jobIds::text[], @workerIds::text[], @operators::text[], @joules::float8[], @estimated::bool[])
                with ordinality as a(attempt_id, job_id, worker_id, operator_account_id, joules_per_gflop, joules_estimated, n)
            order by a.n
            on conflict (attempt_id) do nothing
            """,
            new
            {
                attemptIds = attempts.Select(a => a.Attempt.AttemptId.Value).ToArray(),
                jobIds = attempts.Select(a => a.JobId).ToArray(),
                workerIds = attempts.Select(a => a.Attempt.WorkerId.Value).ToArray(),
                operators = attempts.Select(a => a.Attempt.OperatorAccountId.Value).ToArray(),
                joules = attempts.Select(a => a.JoulesPerGflop).ToArray(),
                estimated = attempts.Select(a => a.Attempt.Metrics.JoulesEstimated).ToArray(),
            }, tx, cancellationToken: ct));
}
