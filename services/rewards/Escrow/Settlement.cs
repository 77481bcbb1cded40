using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>One paid attempt's share of a job's price, after the network fee.</summary>
public sealed record Payout(AcceptedAttempt Attempt, decimal Amount);

/// <summary>
/// How a completed job's escrow is split. The client pays for the replicas it asked for and for keeping the output,
/// never more than it escrowed: the work = min(escrow, price of the job's GFLOP x paid attempts), where the GFLOP is
/// the network's own estimate from the input shapes (a node's figure is not believed) and spot checks (which the
/// network adds on its own account) are not paid; the output fee (<see cref="PricingOptions.OutputFeeOf"/>, by the
/// planned output size) comes out of what is left of the escrow; cost = work + output fee, and the rest is refunded.
/// Each paid attempt's operator gets an equal share of the work less the network fee, rounded down to 6 digits; the
/// fee account takes what is left, rounding remainder included, and the output fee, so the postings sum to exactly
/// zero. The job's mints and bonuses are paid out of the work's fee (<see cref="Minting.FeeFundedMint"/>), not out
/// of the output fee, which pays for storage.
/// </summary>
public sealed record Settlement(decimal Escrowed, decimal Cost, decimal Refund, decimal Fee, decimal OutputFee, IReadOnlyList<Payout> Payouts)
{
    public static Settlement Of(decimal escrowed, string kernel, double networkGflop, long outputBytes, IReadOnlyList<AcceptedAttempt> accepted, PricingOptions pricing)
    {
        var paid = accepted.Where(a => !a.SpotCheck).ToList();
        if (paid.Count == 0)
            return new Settlement(escrowed, 0m, escrowed, 0m, 0m, []);
        var work = Math.Min(escrowed, pricing.PriceOf(kernel, networkGflop) * paid.Count);
        var outputFee = Math.Min(escrowed - work, pricing.OutputFeeOf(outputBytes));
        var share = CreditLedger.RoundDown(work / paid.Count * (1 - pricing.NetworkFee));
        var payouts = paid.Select(a => new Payout(a, share)).ToList();
        return new Settlement(escrowed, work + outputFee, escrowed - work - outputFee, work - share * paid.Count, outputFee, payouts);
    }

    /// <summary>The settle transaction: escrow released, refund to the client, payouts, fee.</summary>
    public IReadOnlyList<Posting> Postings(string clientAccountId) =>
    [
        new Posting(CreditLedger.Escrow, "settle", -Escrowed),
        new Posting(clientAccountId, "refund", Refund),
        .. Payouts.Select(p => new Posting(p.Attempt.OperatorAccountId.Value, "payout", p.Amount, p.Attempt.WorkerId.Value)),
        new Posting(CreditLedger.Fees, "fee", Fee),
        // Zero for a tiny job's output: the ledger writes no posting of zero.
        new Posting(CreditLedger.Fees, "output-fee", OutputFee),
    ];
}
