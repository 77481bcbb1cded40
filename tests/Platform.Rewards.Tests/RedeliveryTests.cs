using Platform.Contracts;
using Platform.Contracts.Messages;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests;

/// <summary>
/// Every message rewards consumes, delivered three times (each time under a new message id, as a redelivery
/// after a lost ack looks), leaves every balance exactly as one delivery does.
/// </summary>
public sealed class RedeliveryTests
{
    private sealed record Outcome(IReadOnlyDictionary<string, decimal> Balances);

    [Fact]
    public async Task Every_consumed_message_delivered_three_times_leaves_the_balances_of_one_delivery()
    {
        var once = await RunAsync(deliveries: 1);
        var thrice = await RunAsync(deliveries: 3);

        Assert.Equal(once.Balances, thrice.Balances);
        // The scenario moved money everywhere it should have, so the comparison is not vacuous.
        Assert.All(once.Balances.Where(b => b.Key != "sys:escrow"), b => Assert.NotEqual(0m, b.Value));
        Assert.Equal(0m, once.Balances["sys:escrow"]);
    }

    /// <summary>The same story in a fresh database: accounts opened, jobs escrowed, completed, failed, cancelled, a penalty and a pin fee.</summary>
    private static async Task<Outcome> RunAsync(int deliveries)
    {
        await using var rewards = await RewardsTestHost.StartAsync($"rewards-redeliver-{deliveries}");
        var clientId = AccountId.New();
        var operatorA = AccountId.New();
        var operatorB = AccountId.New();
        foreach (var (id, role, credits) in new[] { (clientId, "client", 100m), (operatorA, "operator", 50m), (operatorB, "operator", 0m) })
        {
            var open = new OpenAccount { AccountId = id, Role = role, InitialCredits = credits, OccurredAt = DateTimeOffset.UtcNow };
            for (var i = 0; i < deliveries; i++)
                await rewards.Harness.GetRequestClient<OpenAccount>().GetResponse<AccountOpened>(open);
        }
        await rewards.StakeAsync(operatorA, 40m, key: "stake-once");

        var completedJob = Submitted(clientId, gflop: 10, replicas: 2);
        var failedJob = Submitted(clientId, gflop: 4);
        var cancelledJob = Submitted(clientId, gflop: 6);
        foreach (var job in new[] { completedJob, failedJob, cancelledJob })
            await rewards.PublishAsync(job, deliveries);

        var completed = Completed(completedJob, Attempt(operatorA, 9, joules: 90), Attempt(operatorB, 9, joules: 45));
        await rewards.PublishAsync(completed, deliveries);
        var failed = new JobFailed { JobId = failedJob.JobId, ClientAccountId = clientId, Reason = "input_invalid", Detail = "bad", OccurredAt = DateTimeOffset.UtcNow };
        await rewards.PublishAsync(failed, deliveries);
        var cancelled = new JobCancelled { JobId = cancelledJob.JobId, ClientAccountId = clientId, Reason = "cancelled_by_client", OccurredAt = DateTimeOffset.UtcNow };
        await rewards.PublishAsync(cancelled, deliveries);
        var penalty = Penalized(operatorA, completedJob.JobId) with { AttemptId = AttemptId.From("att_redelivery") };
        await rewards.PublishAsync(penalty, deliveries);

        var pin = new ChargePinFee { Cid = Cid.Compute("pinned bytes"u8), Owner = clientId, Size = 3L << 30 };
        for (var i = 0; i < deliveries; i++)
            await rewards.Harness.GetRequestClient<ChargePinFee>().GetResponse<PinFeeCharged, PinFeeRefused>(pin);

        await rewards.AssertLedgerBalancedAsync();
        var balances = new Dictionary<string, decimal>
        {
            ["client"] = await rewards.BalanceAsync(clientId.Value),
            ["operatorA"] = await rewards.BalanceAsync(operatorA.Value),
            ["operatorA stake"] = await rewards.StakedAsync(operatorA),
            ["operatorB"] = await rewards.BalanceAsync(operatorB.Value),
            ["sys:escrow"] = await rewards.BalanceAsync("sys:escrow"),
            ["sys:fees"] = await rewards.BalanceAsync("sys:fees"),
            ["sys:mint"] = await rewards.BalanceAsync("sys:mint"),
        };
        return new Outcome(balances);
    }
}
