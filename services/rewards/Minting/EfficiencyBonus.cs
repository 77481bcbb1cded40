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

    /// <summary>Adds an accepted attempt to the history, once.</summary>
    public static Task RecordAsync(NpgsqlTransaction tx, string jobId, AcceptedAttempt attempt, double joulesPerGflop, CancellationToken ct) =>
        tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into attempt_energy (attempt_id, job_id, worker_id, operator_account_id, joules_per_gflop, joules_estimated)
            values (@AttemptId, @jobId, @WorkerId, @OperatorAccountId, @joulesPerGflop, @JoulesEstimated)
            on conflict (attempt_id) do nothing
            """,
            new
            {
                AttemptId = attempt.AttemptId.Value,
                jobId,
                WorkerId = attempt.WorkerId.Value,
                OperatorAccountId = attempt.OperatorAccountId.Value,
                joulesPerGflop,
                attempt.Metrics.JoulesEstimated,
            }, tx, cancellationToken: ct));
}
