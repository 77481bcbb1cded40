using MassTransit.Testing;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Scheduler.Nodes;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Nodes;

/// <summary>
/// What the node intake believes, on the test harness with the real database: only registered workers, with the key
/// and the operator their registration gives; progress is passed on for the gateway only once checked.
/// </summary>
public sealed class NodeIntakeTests : SchedulerHarnessTest
{
    public NodeIntakeTests()
        : base("scheduler-intake")
    {
    }

    private static WorkerOnline Online(AccountId @operator) => TestWorkerKeys.Registered(new WorkerOnline
    {
        WorkerId = WorkerId.New(),
        OperatorAccountId = @operator,
        Region = "local",
        Slots = 1,
        Kernels = ["vector-add"],
        Devices = [],
        GflopsPerKernel = new Dictionary<string, double> { ["vector-add"] = 1 },
        PowerWatts = 10,
        OccurredAt = DateTimeOffset.UtcNow,
    });

    [Fact]
    public async Task A_worker_no_operator_registered_is_not_taken_and_is_counted()
    {
        await StartAsync();
        var stranger = Online(AccountId.New());

        await Harness.Bus.Publish(stranger);
        await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == stranger.WorkerId);

        Assert.Equal(0, await QueryAsync<long>("select count(*) from workers where id = @id", new { id = stranger.WorkerId.Value }));
        Assert.Equal(1, await QueryAsync<long>("select count from rejected_node_messages where reason = @reason", new { reason = RejectedNodeMessages.UnregisteredWorker }));
    }

    [Fact]
    public async Task A_worker_works_for_the_operator_that_registered_it_whatever_it_announces()
    {
        await StartAsync();
        var registeredBy = AccountId.New();
        var victim = AccountId.New();
        var worker = Online(registeredBy);
        await _host.RegisterAsync(worker);

        // It announces itself as the victim's node (to get the victim slashed, or to pass for a second operator).
        var posing = TestWorkerKeys.Registered(worker with { OperatorAccountId = victim });
        await Harness.Bus.Publish(posing);
        await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == worker.WorkerId);

        Assert.Equal(registeredBy.Value, await QueryAsync<string>("select operator_account_id from workers where id = @id", new { id = worker.WorkerId.Value }));
    }

    private static bool Relayed(IPublishedMessage<AttemptProgressed> m) => m.Context.Headers.TryGetHeader(AttemptProgressedRelay.RelayedHeader, out _);

    [Fact]
    public async Task Progress_is_passed_on_only_from_the_worker_holding_the_attempt_signed_with_its_key()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10);
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);
        var progress = new AttemptProgressed { JobId = job.JobId, AttemptId = assign.AttemptId, WorkerId = worker.WorkerId, Fraction = 0.5, OccurredAt = DateTimeOffset.UtcNow };

        var forged = progress with { Fraction = 0.9, Signature = TestWorkerKeys.Signed(progress with { WorkerId = WorkerId.New() }).Signature };
        await Harness.Bus.Publish(forged);
        await Harness.Bus.Publish(TestWorkerKeys.Signed(progress));

        Assert.True(await Harness.Published.Any<AttemptProgressed>(m => m.Context.Message.Fraction == 0.5 && Relayed(m)));
        await Eventually.UntilAsync(async () => await QueryAsync<long>(
            "select coalesce(sum(count), 0)::bigint from rejected_node_messages where reason = @reason", new { reason = RejectedNodeMessages.KeyMismatch }) == 1,
            TimeSpan.FromSeconds(30), "the forged progress counted as key_mismatch");
        Assert.DoesNotContain(Harness.Published.Select<AttemptProgressed>(), m => m.Context.Message.Fraction == 0.9 && Relayed(m));
    }
}
