using Dapper;
using Platform.Contracts;
using Platform.Rewards.Escrow;
using Platform.Rewards.Ledger;
using Platform.Rewards.Minting;
using Platform.Rewards.Staking;
using Xunit.Abstractions;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Minting;

/// <summary>
/// Self-dealing does not pay (DESIGN section 8, invariant 8): per job, payouts + mints + bonuses never exceed what
/// the client paid, so a person who sends jobs to their own nodes ends no richer.
/// </summary>
public sealed class SelfDealingTests(ITestOutputHelper output) : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-self-dealing");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    [Fact]
    public async Task A_client_routing_jobs_to_its_own_nodes_is_never_richer_after_any_of_100_cycles()
    {
        const int seed = 15_0308;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        // One person: the client account and two operator accounts (a second one to run its own spot checks), staked.
        var client = await _rewards.OpenAsync("client", 1_000_000m);
        var (own, ownSpotChecker) = (await _rewards.OpenAsync("operator", 100m), await _rewards.OpenAsync("operator", 100m));
        Assert.Equal(StakeOutcome.Applied, (await _rewards.StakeAsync(own, 100m)).Outcome);
        Assert.Equal(StakeOutcome.Applied, (await _rewards.StakeAsync(ownSpotChecker, 100m)).Outcome);
        async Task<decimal> WorthAsync() =>
            await _rewards.BalanceAsync(client.Value) + await _rewards.BalanceAsync(own.Value) + await _rewards.BalanceAsync(ownSpotChecker.Value)
            + await _rewards.StakedAsync(own) + await _rewards.StakedAsync(ownSpotChecker);

        // An honest stranger's attempt starts the energy history at 100 J/GFLOP.
        var stranger = await _rewards.OpenAsync("client", 1000m);
        var honest = Submitted(stranger, 100);
        await _rewards.PublishAsync(honest);
        await _rewards.PublishAsync(Completed(honest, Attempt(await _rewards.OpenAsync("operator", 0m), 100, joules: 10_000)));

        var start = await WorthAsync();
        var attempts = 0;
        for (var cycle = 0; cycle < 100; cycle++)
        {
            // Matmul-sized jobs (two n x n matrices, n up to 4096: up to ~137 GFLOP), 1 to 3 replicas, half of them spot-checked.
            var n = random.Next(64, 4097);
            var gflop = 2.0 * n * n * n / 1e9;
            var replicas = random.Next(1, 4);
            var job = Submitted(client, gflop, replicas);
            await _rewards.PublishAsync(job);
            // Every attempt reports less energy per GFLOP than any before it (so it is below the median and earns the
            // bonus), and claims a thousand times the work it was given.
            var joules = gflop * 1e-3 / (cycle + 1);
            var accepted = Enumerable.Range(0, replicas).Select(_ => Attempt(own, gflop * 1000, joules))
                .Concat(random.Next(2) == 0 ? [Attempt(ownSpotChecker, gflop * 1000, joules, spotCheck: true)] : [])
                .ToArray();
            attempts += accepted.Length;
            await _rewards.PublishAsync(Completed(job, accepted));

            var worth = await WorthAsync();
            output.WriteLine($"cycle {cycle}: {gflop:F3} GFLOP x {replicas} replicas, {accepted.Length} attempts: worth {worth} (start {start})");
            Assert.True(worth <= start, $"cycle {cycle}: the self-dealer is worth {worth}, more than the {start} it started with");
        }

        // Every attempt did earn its mint and its efficiency bonus: the rule holds with both paid.
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        var (mints, bonuses) = await connection.QuerySingleAsync<(long, long)>(
            """
            select count(*) filter (where kind = 'mint'), count(*) filter (where kind = 'efficiency-bonus')
            from postings where account_id = any(@accounts) and amount > 0
            """, new { accounts = new[] { own.Value, ownSpotChecker.Value } });
        Assert.Equal(attempts, mints);
        Assert.Equal(attempts, bonuses);
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public void Payout_mint_and_bonus_never_exceed_what_the_client_paid_for_random_jobs()
    {
        const int seed = 20261203;
        const int cases = 20_000;
        output.WriteLine($"seed {seed}, {cases} cases");
        var random = new Random(seed);
        double[] oddGflop = [0, -1, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1e-300, 1e14, 1e300, double.Epsilon];
        double?[] oddJoules = [null, 0, -1, double.NaN, double.PositiveInfinity, 1e300, 1e-300];
        for (var i = 0; i < cases; i++)
        {
            var pricing = new PricingOptions
            {
                PricePerGflop = new() { ["k"] = Math.Round((decimal)(random.NextDouble() * 10), 6) },
                MinimumCharge = random.Next(3) == 0 ? 0m : 0.01m,
                NetworkFee = Math.Round((decimal)random.NextDouble(), 6),
                MintPerGflop = Math.Round((decimal)(random.NextDouble() * 10), 6),
                EfficiencyBonus = Math.Round((decimal)(random.NextDouble() * 10), 6),
            };
            var gflop = random.Next(10) == 0 ? oddGflop[random.Next(oddGflop.Length)] : Math.Pow(10, random.NextDouble() * 8 - 3);
            var replicas = random.Next(1, 6);
            var paid = random.Next(1, replicas + 1);
            var spotChecks = random.Next(0, 3);
            var median = random.Next(4) == 0 ? (double?)null : random.NextDouble() * 100;
            var accepted = Enumerable.Range(0, paid + spotChecks).Select(a => Attempt(AccountId.New(), random.NextDouble() * 1e15,
                    random.Next(5) == 0 ? oddJoules[random.Next(oddJoules.Length)] : random.NextDouble() * 1000 * Math.Max(gflop, 0),
                    spotCheck: a >= paid, mintWithheld: random.Next(10) == 0)).ToList();

            var escrow = pricing.EscrowOf("k", gflop, replicas);
            var settlement = Settlement.Of(escrow, "k", gflop, outputBytes: 0, accepted, pricing);
            var grants = FeeFundedMint.Of(accepted, gflop, settlement.Fee, median, pricing);

            var earned = settlement.Payouts.Sum(p => p.Amount) + grants.Sum(g => g.Minted + g.Bonus);
            var what = $"case {i}: {gflop} GFLOP x {replicas} replicas, {paid} paid + {spotChecks} spot checks";
            Assert.True(earned <= settlement.Cost, $"{what}: operators got {earned}, the client paid {settlement.Cost}");
            Assert.True(settlement.Cost <= escrow && escrow <= CreditLedger.MaxAmount, $"{what}: cost {settlement.Cost}, escrow {escrow}");
            Assert.Equal(0m, settlement.Postings("acc_client").Sum(p => p.Amount));
            Assert.All(grants, g =>
            {
                Assert.True(g.Minted >= 0 && g.Bonus >= 0 && g.Minted == CreditLedger.Round(g.Minted) && g.Bonus == CreditLedger.Round(g.Bonus), $"{what}: grant {g}");
                Assert.True(!g.Attempt.MintWithheld || g.Minted + g.Bonus == 0, $"{what}: a withheld attempt was minted");
            });
        }
    }
}
