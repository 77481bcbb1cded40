using Dapper;
using MassTransit.Testing;
using Platform.Contracts.Messages;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>
/// No figure in a message can overflow the ledger's numeric(20, 6) columns or carry NaN into it: every such
/// message settles (or is rejected) normally, nothing dead-letters, and no escrow is left held.
/// </summary>
public sealed class BoundedAmountsTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-bounded");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    private async Task<string> EscrowStatusAsync(JobSubmitted job)
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<string>("select status from escrows where job_id = @id", new { id = job.JobId.Value }) ?? "none";
    }

    // NaN and the infinities cannot travel at all: System.Text.Json refuses to write them and, strict by default,
    // to read them (see the last test); FeeFundedMintTests feeds them to the arithmetic directly.
    [Theory]
    [InlineData(1e14, 0)]
    [InlineData(1e14, -1)]
    [InlineData(1e14, 1e300)]
    [InlineData(1e300, -1e300)]
    [InlineData(-5, 1e-300)]
    [InlineData(double.MaxValue, double.Epsilon)]
    [InlineData(double.Epsilon, double.MaxValue)]
    public async Task A_completion_with_absurd_node_metrics_settles_on_the_networks_own_figures(double nodeGflop, double nodeJoules)
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        var job = Submitted(client, gflop: 10);
        await _rewards.PublishAsync(job);

        // The scheduler passes the node's metrics on as they came; what it checked, it checked (here: the same absurd figure).
        var attempt = Attempt(operatorAccount, 10) with
        {
            Metrics = new AttemptMetrics { DurationMs = nodeJoules, Gflop = nodeGflop, Device = "cpu", Joules = nodeJoules },
            CheckedJoules = nodeJoules,
        };
        await _rewards.PublishAsync(Completed(job, attempt));

        Assert.Equal("settled", await EscrowStatusAsync(job));
        Assert.Equal(95m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(5m, await _rewards.BalanceAsync(operatorAccount.Value)); // 4.5 paid + the 0.5 fee as its mint
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Theory]
    [InlineData(1e300)]
    [InlineData(1e15)]
    [InlineData(double.MaxValue)]
    public async Task A_job_estimated_beyond_what_any_account_may_hold_is_rejected_not_dead_lettered(double estimate)
    {
        var client = await _rewards.OpenAsync("client", 1_000_000_000_000m);
        var job = Submitted(client, estimate, replicas: 5);

        await _rewards.PublishAsync(job);

        var rejected = await _rewards.Harness.Published.SelectAsync<JobRejected>(m => m.Context.Message.JobId == job.JobId).First();
        Assert.Equal("insufficient_credits", rejected.Context.Message.Reason);
        Assert.Equal("rejected", await EscrowStatusAsync(job));
        Assert.Equal(1_000_000_000_000m, await _rewards.BalanceAsync(client.Value));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(-1e300)]
    public async Task A_job_estimated_at_no_work_costs_the_minimum_and_mints_nothing(double estimate)
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        var job = Submitted(client, estimate);
        await _rewards.PublishAsync(job);

        await _rewards.PublishAsync(Completed(job, Attempt(operatorAccount, 1e14, joules: 1)));

        Assert.Equal("settled", await EscrowStatusAsync(job));
        // The minimum charge of 0.01: 0.009 paid, nothing minted for no work, whatever the node says it did.
        Assert.Equal(99.99m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(0.009m, await _rewards.BalanceAsync(operatorAccount.Value));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task NaN_and_infinities_cannot_be_put_on_the_bus()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10);
        var attempt = Attempt(await _rewards.OpenAsync("operator", 0m), double.NaN, joules: double.PositiveInfinity);

        await Assert.ThrowsAsync<System.Runtime.Serialization.SerializationException>(() => _rewards.Harness.Bus.Publish(Bundle.Of(Completed(job, attempt))));
        await Assert.ThrowsAsync<System.Runtime.Serialization.SerializationException>(() => _rewards.Harness.Bus.Publish(Bundle.Of(Submitted(client, double.NaN))));
    }
}
