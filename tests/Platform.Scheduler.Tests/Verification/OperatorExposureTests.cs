using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// The scheduler's answer to rewards before an unstake, from its real database: which results of an operator
/// still await verification, and which of its attempts it penalized.
/// </summary>
public sealed class OperatorExposureTests() : SchedulerHarnessTest("scheduler-exposure")
{
    private async Task<OperatorExposure> ExposureAsync(AccountId operatorAccount) =>
        (await Harness.GetRequestClient<GetOperatorExposure>().GetResponse<OperatorExposure>(
            new GetOperatorExposure { OperatorAccountId = operatorAccount, OccurredAt = DateTimeOffset.UtcNow })).Message;

    [Fact]
    public async Task An_operator_is_exposed_while_its_result_awaits_the_other_replica_and_then_by_its_penalized_attempt()
    {
        await StartAsync();
        var cheatersOperator = AccountId.New();
        await WorkerAsync(gflops: 100, cheatersOperator);
        var honest = await WorkerAsync(gflops: 50);
        await WorkerAsync(gflops: 10);
        var job = await SubmitAsync(replicas: 2);

        var first = await AssignedAsync(job.JobId);
        await ReportAsync(first, Output(2, 3, 4));
        await Eventually.UntilAsync(() => QueryAsync<string>("select status from attempts where id = @id", new { id = first.AttemptId.Value }),
            s => s == "submitted", TimeSpan.FromSeconds(30), "the first result to be in");

        var waiting = await ExposureAsync(cheatersOperator);
        Assert.Equal(1, waiting.UnverifiedAttempts);
        Assert.Empty(waiting.PenalizedAttemptIds);
        Assert.Equal(0, (await ExposureAsync(honest.OperatorAccountId)).UnverifiedAttempts);

        await ReportAsync(await AssignedAsync(job.JobId, nth: 2), Output(1, 2, 3));
        await ReportAsync(await AssignedAsync(job.JobId, nth: 3), Output(1, 2, 3));
        Assert.True(await Harness.Published.Any<WorkerPenalized>(m => m.Context.Message.JobId == job.JobId));

        var judged = await ExposureAsync(cheatersOperator);
        Assert.Equal(0, judged.UnverifiedAttempts);
        Assert.Equal([first.AttemptId], judged.PenalizedAttemptIds);
        var honestExposure = await ExposureAsync(honest.OperatorAccountId);
        Assert.Equal(0, honestExposure.UnverifiedAttempts);
        Assert.Empty(honestExposure.PenalizedAttemptIds);
    }
}
