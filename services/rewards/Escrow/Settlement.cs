using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>One paid attempt's share of a job's price, after the network fee.</summary>
public sealed record Payout(AcceptedAttempt Attempt, decimal Amount);

/// <summary>
/// How a completed job's escrow is split. The client pays for the replicas it asked for, never more than it
/// escrowed: cost = min(escrow, price of the job's GFLOP x paid attempts), where the GFLOP is the network's own
/// estimate from the input shapes (a node's figure is not believed) and spot checks (which the network adds on
/// its own account) are not paid. The rest is refunded. Each paid attempt's operator gets an
/// equal share less the network fee, rounded down to 6 digits; the fee account takes what is left, rounding
/// remainder included, so the postings sum to exactly zero. The job's mints and bonuses are paid out of that fee
/// (<see cref="Minting.FeeFundedMint"/>).
/// </summary>
public sealed record Settlement(decimal Escrowed, decimal Cost, decimal Refund, decimal Fee, IReadOnlyList<Payout> Payouts)
{
    public static Settlement Of(decimal escrowed, string kernel, double networkGflop, IReadOnlyList<AcceptedAttempt> accepted, PricingOptions pricing)
    {
        var paid = accepted.Where(a => !a.SpotCheck).ToList();
        var cost = paid.Count == 0 ? 0m : Math.Min(escrowed, pricing.PriceOf(kernel, networkGflop) * paid.Count);
        var share = paid.Count == 0 ? 0m : CreditLedger.RoundDown(cost / paid.Count * (1 - pricing.NetworkFee));
        var payouts = paid.Select(a => new Payout(a, share)).ToList();
        return new Settlement(escrowed, cost, escrowed - cost, cost - share * paid.Count, payouts);
    }

    /// <summary>The settle transaction: escrow released, refund to the client, payouts, fee.</summary>
    public IReadOnlyList<Posting> Postings(string clientAccountId) =>
    [
        new Posting(CreditLedger.Escrow, "settle", -Escrowed),
        new Posting(clientAccountId, "refund", Refund),
        .. Payouts.Select(p => new Posting(p.Attempt.OperatorAccountId.Value, "payout", p.Amount, p.Attempt.WorkerId.Value)),
        new Posting(CreditLedger.Fees, "fee", Fee),
    ];
}
