using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Rewards.Escrow;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Minting;

/// <summary>Attempts below the network's median energy per GFLOP are minted a bonus.</summary>
public sealed class EfficiencyBonusTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() =>
        _rewards = await RewardsTestHost.StartAsync("rewards-efficiency", services =>
            services.Configure<PricingOptions>(o => o.EfficiencyWindow = 4));

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    private async Task<AccountId> CompleteAsync(AccountId client, double gflop, double? joules)
    {
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        var job = Submitted(client, gflop);
        await _rewards.PublishAsync(job);
        await _rewards.PublishAsync(Completed(job, Attempt(operatorAccount, gflop, joules)));
        return operatorAccount;
    }

    [Fact]
    public async Task Bonus_goes_to_attempts_below_the_median_of_the_recent_window_and_never_without_history()
    {
        var client = await _rewards.OpenAsync("client", 1000m);

        // No history yet: no bonus, however frugal. Price 5, operator 4.5 + mint 1.
        var first = await CompleteAsync(client, 10, joules: 1);
        Assert.Equal(5.5m, await _rewards.BalanceAsync(first.Value));

        // History (window of 4): 0.1, 50, 60, 70 J/GFLOP -> median 55.
        await CompleteAsync(client, 10, joules: 500);
        await CompleteAsync(client, 10, joules: 600);
        await CompleteAsync(client, 10, joules: 700);

        var frugal = await CompleteAsync(client, 10, joules: 100); // 10 J/GFLOP, below 55: mint 1 + 20%
        Assert.Equal(4.5m + 1.2m, await _rewards.BalanceAsync(frugal.Value));

        // Window now 50, 60, 70, 10 -> median 55; 80 J/GFLOP is above it.
        var wasteful = await CompleteAsync(client, 10, joules: 800);
        Assert.Equal(5.5m, await _rewards.BalanceAsync(wasteful.Value));

        // No energy figure: no bonus and no effect on the history.
        var unknown = await CompleteAsync(client, 10, joules: null);
        Assert.Equal(5.5m, await _rewards.BalanceAsync(unknown.Value));

        await _rewards.AssertLedgerBalancedAsync();
    }
}
