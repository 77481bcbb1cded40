using Platform.Rewards.Staking;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Staking;

/// <summary>WorkerPenalized slashes the operator's stake, once per penalized attempt.</summary>
public sealed class SlashingTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-slashing");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    [Fact]
    public async Task Penalty_slashes_half_the_current_stake_to_fees_once_and_publishes_the_new_stake()
    {
        var operatorAccount = await _rewards.OpenAsync("operator", 100m);
        var staked = await _rewards.StakeAsync(operatorAccount, 80m);
        Assert.Equal(StakeOutcome.Applied, staked.Outcome);
        var fees = await _rewards.BalanceAsync("sys:fees");

        var penalty = Penalized(operatorAccount);
        await _rewards.PublishAsync(penalty, 3);

        Assert.Equal(40m, await _rewards.StakedAsync(operatorAccount));
        Assert.Equal(20m, await _rewards.BalanceAsync(operatorAccount.Value));
        Assert.Equal(fees + 40m, await _rewards.BalanceAsync("sys:fees"));

        // A second penalty takes half of what is left.
        var second = Penalized(operatorAccount);
        await _rewards.PublishAsync(second);
        Assert.Equal(20m, await _rewards.StakedAsync(operatorAccount));

        var changes = await _rewards.StakeChangesAsync(operatorAccount);
        Assert.Equal([80m, 40m, 20m], changes.Select(c => c.Staked));
        Assert.Equal(staked.Version, changes[0].Version);
        Assert.True(changes[0].Version < changes[1].Version && changes[1].Version < changes[2].Version, "versions grow with every change");
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Penalty_for_an_operator_without_stake_changes_nothing()
    {
        var operatorAccount = await _rewards.OpenAsync("operator", 10m);
        var penalty = Penalized(operatorAccount);

        await _rewards.PublishAsync(penalty, 2);

        Assert.Equal(10m, await _rewards.BalanceAsync(operatorAccount.Value));
        Assert.Equal(0m, await _rewards.StakedAsync(operatorAccount));
        Assert.Empty(await _rewards.StakeChangesAsync(operatorAccount));

        // Staking afterwards does not let the old penalty, redelivered, take the new stake.
        await _rewards.StakeAsync(operatorAccount, 10m);
        await _rewards.PublishAsync(penalty);
        Assert.Equal(10m, await _rewards.StakedAsync(operatorAccount));
    }

    [Fact]
    public async Task Penalty_for_an_unknown_operator_does_not_fail()
    {
        var penalty = Penalized(Platform.Contracts.AccountId.New());

        // PublishAsync fails the test if the consumer threw.
        await _rewards.PublishAsync(penalty);
    }
}
