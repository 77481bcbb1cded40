using Platform.Contracts.Messages;
using Platform.Rewards.Escrow;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Minting;

/// <summary>One accepted attempt's reward and efficiency bonus, and its checked joules per GFLOP (null without a checked figure).</summary>
public sealed record MintGrant(AcceptedAttempt Attempt, decimal Minted, decimal Bonus, double? JoulesPerGflop);

/// <summary>
/// What a completed job's accepted attempts are minted. Each is due <see cref="PricingOptions.MintPerGflop"/> x the
/// job's GFLOP as the network estimated it from the input shapes (never the node's own figure), plus
/// <see cref="PricingOptions.EfficiencyBonus"/> of that when the joules the scheduler checked come to less per GFLOP
/// than the network median; an attempt whose mint the scheduler withheld (a spot check was due that no other
/// operator could run) is due nothing. All of it is paid out of the job's network fee: when the attempts are due
/// more than the fee, each gets the same share of what it was due, rounded down, so together they never get more
/// than the fee. Payouts + fee = what the client paid, so payouts + mints + bonuses never exceed it: a client that
/// sends jobs to its own nodes gets back at most what it paid (DESIGN section 8, invariant 8).
/// </summary>
public static class FeeFundedMint
{
    public static IReadOnlyList<MintGrant> Of(IReadOnlyList<AcceptedAttempt> accepted, double networkGflop, decimal fee, double? medianJoulesPerGflop, PricingOptions pricing)
    {
        var reward = CreditLedger.Bounded(pricing.MintPerGflop * CreditLedger.GflopOf(networkGflop));
        var due = accepted.Select(attempt =>
        {
            var joulesPerGflop = EfficiencyBonus.JoulesPerGflop(attempt.CheckedJoules, networkGflop);
            if (attempt.MintWithheld)
                return new MintGrant(attempt, 0m, 0m, joulesPerGflop);
            var bonus = joulesPerGflop < medianJoulesPerGflop ? CreditLedger.Round(reward * pricing.EfficiencyBonus) : 0m;
            return new MintGrant(attempt, reward, bonus, joulesPerGflop);
        }).ToList();

        var total = due.Sum(g => g.Minted + g.Bonus);
        if (total <= fee)
            return due;
        var share = Math.Max(0m, fee) / total;
        return due.Select(g => g with { Minted = CreditLedger.RoundDown(g.Minted * share), Bonus = CreditLedger.RoundDown(g.Bonus * share) }).ToList();
    }
}
