using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Escrow;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Minting;

/// <summary>Attempts below the network's median energy per GFLOP, by the joules the scheduler checked, are minted a bonus.</summary>
public sealed class EfficiencyBonusTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    // A fee of half the price (2.5 on a 10-GFLOP matmul) covers the mint (1) and its bonus (0.2), so the bonus shows.
    public async Task InitializeAsync() =>
        _rewards = await RewardsTestHost.StartAsync("rewards-efficiency", services =>
            services.Configure<PricingOptions>(o => (o.EfficiencyWindow, o.NetworkFee) = (4, 0.5m)));

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    private async Task<AccountId> CompleteAsync(AccountId client, double gflop, double? joules) =>
        await CompleteAsync(client, gflop, a => Attempt(a, gflop, joules));

    private async Task<AccountId> CompleteAsync(AccountId client, double gflop, Func<AccountId, AcceptedAttempt> attempt)
    {
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        var job = Submitted(client, gflop);
        await _rewards.PublishAsync(job);
        await _rewards.PublishAsync(Completed(job, attempt(operatorAccount)));
        return operatorAccount;
    }

    private async Task<long> HistoryAsync()
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>("select count(*) from attempt_energy");
    }

    [Fact]
    public async Task Bonus_goes_to_attempts_below_the_median_of_the_recent_window_and_never_without_history()
    {
        var client = await _rewards.OpenAsync("client", 1000m);

        // No history yet: no bonus, however frugal. Price 5, operator 2.5 + mint 1.
        var first = await CompleteAsync(client, 10, joules: 1);
        Assert.Equal(3.5m, await _rewards.BalanceAsync(first.Value));

        // History (window of 4): 0.1, 50, 60, 70 J/GFLOP -> median 55.
        await CompleteAsync(client, 10, joules: 500);
        await CompleteAsync(client, 10, joules: 600);
        await CompleteAsync(client, 10, joules: 700);

        var frugal = await CompleteAsync(client, 10, joules: 100); // 10 J/GFLOP, below 55: mint 1 + 20%
        Assert.Equal(2.5m + 1.2m, await _rewards.BalanceAsync(frugal.Value));

        // Window now 50, 60, 70, 10 -> median 55; 80 J/GFLOP is above it.
        var wasteful = await CompleteAsync(client, 10, joules: 800);
        Assert.Equal(3.5m, await _rewards.BalanceAsync(wasteful.Value));

        // No energy figure: no bonus and no effect on the history.
        var unknown = await CompleteAsync(client, 10, joules: null);
        Assert.Equal(3.5m, await _rewards.BalanceAsync(unknown.Value));

        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Only_joules_the_scheduler_checked_earn_the_bonus_or_join_the_history()
    {
        var client = await _rewards.OpenAsync("client", 1000m);
        foreach (var joules in new[] { 500, 600, 700, 800 })
            await CompleteAsync(client, 10, joules: joules); // median 65 J/GFLOP
        var history = await HistoryAsync();

        // The node claims 1 J (or 0 J) but the scheduler found no plausible figure: no bonus, no history.
        var claimed = await CompleteAsync(client, 10, a => Attempt(a, 10) with { Metrics = Attempt(a, 10).Metrics with { Joules = 1 }, CheckedJoules = null });
        var zero = await CompleteAsync(client, 10, a => Attempt(a, 10, joules: 0));
        var negative = await CompleteAsync(client, 10, a => Attempt(a, 10, joules: -5));
        // The node claims nothing useful, but the joules the scheduler checked are frugal: that is what counts.
        var checkedFrugal = await CompleteAsync(client, 10, a => Attempt(a, 10) with { Metrics = Attempt(a, 10).Metrics with { Joules = 1e300 }, CheckedJoules = 100 });

        Assert.Equal(3.5m, await _rewards.BalanceAsync(claimed.Value));
        Assert.Equal(3.5m, await _rewards.BalanceAsync(zero.Value));
        Assert.Equal(3.5m, await _rewards.BalanceAsync(negative.Value));
        Assert.Equal(3.7m, await _rewards.BalanceAsync(checkedFrugal.Value));
        Assert.Equal(history + 1, await HistoryAsync());
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task An_attempt_whose_mint_was_withheld_is_paid_but_minted_nothing()
    {
        var client = await _rewards.OpenAsync("client", 1000m);

        var unverifiable = await CompleteAsync(client, 10, a => Attempt(a, 10, mintWithheld: true));

        // 2.5 paid (the client got its result), no mint: the 2.5 fee stays with the network.
        Assert.Equal(2.5m, await _rewards.BalanceAsync(unverifiable.Value));
        Assert.Equal(2.5m, await _rewards.BalanceAsync("sys:fees"));
        await _rewards.AssertLedgerBalancedAsync();
    }
}
