using Platform.Hosting.Metrics;

namespace Platform.Rewards.Metrics;

/// <summary>The ledger's totals, read from the ledger itself: what moved by kind, the system accounts, escrows by state.</summary>
public static class RewardsMetrics
{
    public static IServiceCollection AddRewardsMetrics(this IServiceCollection services) => services
        // The credited leg of every posting, by kind (payout, mint, slash, escrow, refund, fee...): credits moved in all.
        .AddDatabaseGauge("platform.ledger.credits", "{credit}", "Credits moved by the ledger in all, by posting kind",
            "select kind, sum(amount)::float8 as value from postings where amount > 0 group by kind")
        // sys:escrow is the escrow held now; sys:fees the network's take; sys:mint below zero by every credit granted.
        .AddDatabaseGauge("platform.ledger.balance", "{credit}", "Balances of the system accounts (escrow held, fees, mint)",
            "select id as account, balance::float8 as value from accounts where kind in ('mint', 'escrow', 'fees')")
        .AddDatabaseGauge("platform.escrows", "{escrow}", "Escrows by state (held, settled, refunded, rejected)",
            "select status as state, count(*) as value from escrows group by status");
}
