using System.Diagnostics.Metrics;
using Platform.Hosting.Metrics;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Metrics;

/// <summary>
/// The ledger's figures: credits moved, by posting kind, counted as each ledger transaction is applied (a key already
/// used applies nothing and counts nothing), and the escrow held now.
/// </summary>
public static class RewardsMetrics
{
    private static readonly Counter<double> Moved = PlatformMetrics.Meter.CreateCounter<double>(
        "platform.ledger.credits", "{credit}", "Credits moved by the ledger, by posting kind (payout, mint, slash, escrow, refund, fee...)");

    public static IServiceCollection AddRewardsMetrics(this IServiceCollection services) => services
        // Live escrows only, through their partial index (escrows_held). The system accounts keep no balance row (every
        // job would queue behind it), so escrow held is read from the escrows themselves.
        .AddDatabaseGauge("platform.escrow.held", "{credit}", "Credits held in escrow for jobs not yet settled or refunded",
            "select coalesce(sum(amount), 0)::float8 as value from escrows where status = 'held'")
        .AddDatabaseGauge("platform.escrows.held", "{escrow}", "Escrows held for jobs not yet settled or refunded",
            "select count(*) as value from escrows where status = 'held'");

    /// <summary>
    /// The credited side of each posting applied, by kind. Counted when applied, in the posting's transaction: one that
    /// is rolled back afterwards (a batch failing later and retried) can count twice.
    /// </summary>
    public static void Posted(IEnumerable<Posting> postings)
    {
        foreach (var posting in postings)
        {
            if (posting.Amount > 0)
                Moved.Add((double)posting.Amount, new KeyValuePair<string, object?>("kind", posting.Kind));
        }
    }
}
