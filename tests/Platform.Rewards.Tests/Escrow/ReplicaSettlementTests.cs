using MassTransit.Testing;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Escrow;
using Platform.Testing;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>Escrow per replica and the split of a job's price between its paid attempts, the fee and the client.</summary>
public sealed class ReplicaSettlementTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-replicas");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    [Fact]
    public void Shares_are_rounded_down_and_the_fee_takes_the_remainder()
    {
        var pricing = new PricingOptions { PricePerGflop = new() { ["k"] = 1m }, MinimumCharge = 0m, NetworkFee = 0.1m };
        var attempts = Enumerable.Range(0, 7).Select(_ => Attempt(AccountId.New(), 1)).ToList();

        // Seven paid attempts of a 1-credit result cost 7, capped at the 1 escrowed: each share is 1/7 x 0.9 =
        // 0.1285714..., rounded down to 0.128571; the fee keeps 0.1 and the 0.000003 remainder.
        var settlement = Settlement.Of(escrowed: 1m, "k", networkGflop: 1, outputBytes: 0, attempts, pricing);

        Assert.Equal(1m, settlement.Cost);
        Assert.All(settlement.Payouts, p => Assert.Equal(0.128571m, p.Amount));
        Assert.Equal(0.100003m, settlement.Fee);
        Assert.Equal(0m, settlement.Refund);
        Assert.Equal(0m, settlement.Postings("acc_client").Sum(p => p.Amount));
    }

    [Fact]
    public void Spot_checks_are_not_paid_and_the_client_pays_for_the_replicas_it_asked_for()
    {
        var pricing = new PricingOptions();
        var paid = Attempt(AccountId.New(), 10);
        var spot = Attempt(AccountId.New(), 10, spotCheck: true);

        var settlement = Settlement.Of(escrowed: 5m, "matmul", networkGflop: 10, outputBytes: 0, [paid, spot], pricing);

        Assert.Equal(5m, settlement.Cost);
        Assert.Equal(0m, settlement.Refund);
        var payout = Assert.Single(settlement.Payouts);
        Assert.Same(paid, payout.Attempt);
        Assert.Equal(4.5m, payout.Amount);
        Assert.Equal(0.5m, settlement.Fee);
    }

    [Fact]
    public void Cost_never_exceeds_the_escrow()
    {
        var settlement = Settlement.Of(escrowed: 10m, "matmul", networkGflop: 100, outputBytes: 0, [Attempt(AccountId.New(), 100), Attempt(AccountId.New(), 100)], new PricingOptions());

        Assert.Equal(10m, settlement.Cost);
        Assert.Equal(0m, settlement.Refund);
        Assert.All(settlement.Payouts, p => Assert.Equal(4.5m, p.Amount));
        Assert.Equal(1m, settlement.Fee);
    }

    [Fact]
    public async Task Replicated_job_escrows_its_price_once_per_replica()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10, replicas: 3); // matmul at 0.5 per GFLOP: 5 credits a replica

        await _rewards.PublishAsync(job);

        Assert.Equal(85m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(15m, await _rewards.BalanceAsync("sys:escrow"));
    }

    [Fact]
    public async Task Replicated_job_over_its_max_price_is_rejected()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10, replicas: 3, maxPrice: 12m); // one replica fits, three do not

        await _rewards.PublishAsync(job);

        var rejected = await _rewards.Harness.Published.SelectAsync<JobRejected>(m => m.Context.Message.JobId == job.JobId).First();
        Assert.Equal("max_price_exceeded", rejected.Context.Message.Reason);
        Assert.Equal(100m, await _rewards.BalanceAsync(client.Value));
    }

    [Fact]
    public async Task Two_replicas_and_a_spot_check_pay_two_operators_and_mint_all_three_out_of_the_fee()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var (a, b, c) = (await _rewards.OpenAsync("operator", 0m), await _rewards.OpenAsync("operator", 0m), await _rewards.OpenAsync("operator", 0m));
        var job = Submitted(client, gflop: 10, replicas: 2); // 10 credits escrowed
        await _rewards.PublishAsync(job);

        // The nodes say 8 GFLOP; the price follows the network's estimate of 10: 5 credits a replica, 10 for two.
        var completed = Completed(job, Attempt(a, 8), Attempt(b, 8), Attempt(c, 8, spotCheck: true));
        await _rewards.PublishAsync(completed);

        // 90% of 5 each; the fee of 1 funds the mints: 3 x 1 credit due (0.1 per GFLOP), so each gets a third of it.
        Assert.Equal(90m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(4.5m + 0.333333m, await _rewards.BalanceAsync(a.Value));
        Assert.Equal(4.5m + 0.333333m, await _rewards.BalanceAsync(b.Value));
        Assert.Equal(0.333333m, await _rewards.BalanceAsync(c.Value)); // minted, not paid
        Assert.Equal(0.000001m, await _rewards.BalanceAsync("sys:fees"));
        var settled = await _rewards.Harness.FirstPublishedAsync<PaymentSettled>(m => m.JobId == job.JobId);
        Assert.Equal(10m, settled.Cost);
        Assert.Equal(0m, settled.Refunded);
        Assert.Equal(9m, settled.OperatorPaid);
        Assert.Equal(3, await _rewards.Consumers.OutboxCountAsync<CreditsMinted>(job.JobId.Value));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Completion_from_an_older_scheduler_pays_the_top_level_attempt()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        var job = Submitted(client, gflop: 10);
        await _rewards.PublishAsync(job);

        var completed = Completed(job, Attempt(operatorAccount, 10)) with { Accepted = null };
        await _rewards.PublishAsync(completed);

        // 4.5 paid; the mint of 1 due is capped at the 0.5 fee.
        Assert.Equal(5m, await _rewards.BalanceAsync(operatorAccount.Value));
    }
}
