using System.Net;
using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Testing;

namespace Platform.Rewards.Tests.Staking;

/// <summary>
/// Unstaking through the rewards process's API on the real broker, with a stand-in scheduler: a stake stays while
/// the operator's results await verification or a penalty has not been slashed yet, and stays when the scheduler
/// does not answer. The unbonding period is zero here so that only the scheduler's answer decides; the scheduler
/// has 15 s to answer, as a loaded test machine may take seconds to carry a request through the broker.
/// </summary>
public sealed class UnstakeExposureTests() : RewardsApiTest("rewards-unstake-exposure", new Dictionary<string, string?>
{
    ["Staking__UnbondingPeriod"] = "00:00:00",
    ["Staking__ExposureTimeout"] = "00:00:15",
})
{
    private async Task<string> StakedOperatorAsync(decimal stake)
    {
        var operatorAccount = await OpenAsync("operator", stake);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = stake }), HttpStatusCode.OK);
        return operatorAccount;
    }

    private async Task<decimal> StakedAsync(string operatorAccount) =>
        (await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", operatorAccount), HttpStatusCode.OK)).GetProperty("staked").GetDecimal();

    [Fact]
    public async Task Unstake_is_refused_while_results_of_the_operator_await_verification_and_allowed_once_they_are_checked()
    {
        var operatorAccount = await StakedOperatorAsync(60m);
        Scheduler.Answer = a => SchedulerStandIn.Clear(a) with { UnverifiedAttempts = a.Value == operatorAccount ? 2 : 0 };

        var refused = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 10 }), HttpStatusCode.Conflict, "stake-unverified-attempts");

        Assert.Contains("2 result(s)", refused.GetProperty("detail").GetString());
        Assert.Contains("try again once they have been accepted or rejected", refused.GetProperty("detail").GetString());
        Assert.Equal(60m, await StakedAsync(operatorAccount));

        Scheduler.Answer = SchedulerStandIn.Clear;
        var unstaked = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 10 }), HttpStatusCode.OK);
        Assert.Equal(50m, unstaked.GetProperty("staked").GetDecimal());
    }

    [Fact]
    public async Task Unstake_is_refused_while_a_penalty_is_not_slashed_yet_and_the_slash_is_taken_first()
    {
        var operatorAccount = await StakedOperatorAsync(60m);
        var penalized = AttemptId.New();
        Scheduler.Answer = a => SchedulerStandIn.Clear(a) with { PenalizedAttemptIds = a.Value == operatorAccount ? [penalized] : [] };

        // The scheduler penalized an attempt, but its WorkerPenalized has not reached rewards: the whole stake is still there.
        var refused = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 60 }), HttpStatusCode.Conflict, "stake-slash-pending");
        Assert.Contains(penalized.Value, refused.GetProperty("detail").GetString());
        Assert.Equal(60m, await StakedAsync(operatorAccount));

        await Scheduler.Bus.Publish(new WorkerPenalized
        {
            JobId = JobId.New(),
            AttemptId = penalized,
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.From(operatorAccount),
            Reason = "verification_failed",
            Detail = "the result disagreed",
            OccurredAt = DateTimeOffset.UtcNow,
        });
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await Db.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from penalties where attempt_id = @id", new { id = penalized.Value }) == 1;
        }, TimeSpan.FromSeconds(30), "rewards to apply the penalty");

        // Half the stake was slashed; the rest may leave.
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 60 }), HttpStatusCode.Conflict, "insufficient-stake");
        var unstaked = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 30 }), HttpStatusCode.OK);
        Assert.Equal(0m, unstaked.GetProperty("staked").GetDecimal());
    }

    [Fact]
    public async Task Unstake_is_refused_with_503_when_the_scheduler_does_not_answer()
    {
        var operatorAccount = await StakedOperatorAsync(60m);
        Scheduler.Answer = _ => null;

        var refused = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 10 }), HttpStatusCode.ServiceUnavailable, "upstream-unavailable");

        Assert.Contains("try again", refused.GetProperty("detail").GetString());
        Assert.Equal(60m, await StakedAsync(operatorAccount));
        await Eventually.UntilAsync(() => Task.FromResult(Volatile.Read(ref Scheduler.Asked) > 0), TimeSpan.FromSeconds(30), "the scheduler to have been asked");
    }

    [Fact]
    public async Task Refusals_the_ledger_can_give_alone_do_not_ask_the_scheduler()
    {
        var operatorAccount = await StakedOperatorAsync(60m);
        var client = await OpenAsync("client", 10m);
        Scheduler.Answer = _ => null;

        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 61 }), HttpStatusCode.Conflict, "insufficient-stake");
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", client, new { amount = 1 }), HttpStatusCode.Forbidden, "forbidden");

        Assert.Equal(0, Scheduler.Asked);
    }
}
