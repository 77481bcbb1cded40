using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;
using Platform.Rewards.Minting;

namespace Platform.Rewards.Escrow;

/// <summary>
/// Settles a completed job: the client pays for the replicas it asked for (never more than was escrowed), the
/// rest is refunded, every paid accepted attempt's operator gets its share (<see cref="Settlement"/>), and every
/// accepted attempt, spot checks included, is minted its reward plus any efficiency bonus out of the job's network
/// fee (<see cref="FeeFundedMint"/>). Price and mint follow the job's GFLOP as the network estimated it (kept on
/// the escrow row); what the node says it did is only a statistic. The escrow row moves from held to settled
/// under a row lock, and each effect has its own idempotency key (settle:job, mint:job:attempt), so a redelivered
/// or duplicated JobCompleted pays and mints nothing twice.
/// </summary>
public sealed class JobCompletedConsumer(NpgsqlDataSource db, MessageOutbox outbox, KnownAccounts accounts, IOptions<PricingOptions> pricing, TimeProvider clock) : IConsumer<JobCompleted>
{
    private sealed record EscrowRow(string ClientAccountId, string Kernel, decimal Amount, string Status, double? Gflop);

    public async Task Consume(ConsumeContext<JobCompleted> context)
    {
        var done = context.Message;
        var ct = context.CancellationToken;
        var options = pricing.Value;
        var jobId = done.JobId.Value;

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var escrow = await connection.QuerySingleOrDefaultAsync<EscrowRow>(new CommandDefinition(
            "select client_account_id as ClientAccountId, kernel, amount, status, gflop from escrows where job_id = @jobId for update",
            new { jobId }, tx, cancellationToken: ct));
        if (escrow is null)
            throw new InvalidOperationException($"job {jobId} completed but was never escrowed; retrying until its JobSubmitted is processed");
        if (escrow.Status != "held")
            return;

        var accepted = done.AcceptedAttempts();
        var gflop = escrow.Gflop ?? GflopCoveredBy(escrow, options);
        var settlement = Settlement.Of(escrow.Amount, escrow.Kernel, gflop, accepted, options);
        foreach (var operatorAccount in accepted.Select(a => a.OperatorAccountId.Value).Distinct().Order(StringComparer.Ordinal))
            await accounts.EnsureAsync(tx, operatorAccount, "operator", ct);
        await CreditLedger.PostAsync(tx, $"settle:{jobId}", jobId, settlement.Postings(escrow.ClientAccountId), ct);

        // Every attempt of this job is judged against the same history, recorded before this job's attempts join it.
        var median = await EfficiencyBonus.NetworkMedianAsync(tx, options.EfficiencyWindow, ct);
        var now = clock.GetUtcNow();
        foreach (var grant in FeeFundedMint.Of(accepted, gflop, settlement.Fee, median, options))
        {
            var attempt = grant.Attempt;
            if (grant.JoulesPerGflop is { } recorded)
                await EfficiencyBonus.RecordAsync(tx, jobId, attempt, recorded, ct);
            // Nothing to mint (a tiny job's reward rounds to zero, or the mint was withheld): no ledger transaction
            // at all, rather than one whose postings are all zero.
            if (grant.Minted + grant.Bonus == 0m)
                continue;
            var operatorAccount = attempt.OperatorAccountId.Value;
            var worker = attempt.WorkerId.Value;
            // From the fee the settlement just put in sys:fees: the network gives up part of its fee, it prints nothing.
            var applied = await CreditLedger.PostAsync(tx, $"mint:{jobId}:{attempt.AttemptId}", jobId,
            [
                new Posting(CreditLedger.Fees, "mint", -grant.Minted, worker),
                new Posting(operatorAccount, "mint", grant.Minted, worker),
                new Posting(CreditLedger.Fees, "efficiency-bonus", -grant.Bonus, worker),
                new Posting(operatorAccount, "efficiency-bonus", grant.Bonus, worker),
            ], ct);
            if (applied is not null)
                await outbox.EnqueueAsync(tx, new CreditsMinted { JobId = done.JobId, OperatorAccountId = attempt.OperatorAccountId, Amount = grant.Minted + grant.Bonus, OccurredAt = now }, ct: ct);
        }
        await connection.ExecuteAsync(new CommandDefinition(
            "update escrows set status = 'settled', cost = @Cost, closed_at = now() where job_id = @jobId",
            new { settlement.Cost, jobId }, tx, cancellationToken: ct));

        // PaymentSettled names one operator (the first paid attempt's, else the delivered attempt's) and what all
        // operators were paid together; the ledger has each payout.
        var firstPaid = settlement.Payouts.Count > 0 ? settlement.Payouts[0].Attempt.OperatorAccountId : done.OperatorAccountId;
        await outbox.EnqueueAsync(tx, new PaymentSettled
        {
            JobId = done.JobId,
            ClientAccountId = done.ClientAccountId,
            Cost = settlement.Cost,
            Refunded = settlement.Refund,
            OperatorAccountId = firstPaid,
            OperatorPaid = settlement.Payouts.Sum(p => p.Amount),
            OccurredAt = now,
        }, ct: ct);
        await outbox.CommitAsync(tx, ct);
    }

    /// <summary>
    /// For a job escrowed before the estimate was kept: the GFLOP its escrow pays for at the kernel's rate. That is
    /// the estimate times the replicas, more than the estimate for a replicated job, but the price is capped at the
    /// escrow and the mint at the fee whatever the figure, and it is still the network's figure, not a node's.
    /// </summary>
    private static double GflopCoveredBy(EscrowRow escrow, PricingOptions options)
    {
        var rate = options.PricePerGflop.TryGetValue(escrow.Kernel, out var p) ? p : options.DefaultPricePerGflop;
        return rate > 0 ? (double)(escrow.Amount / rate) : 0;
    }
}
