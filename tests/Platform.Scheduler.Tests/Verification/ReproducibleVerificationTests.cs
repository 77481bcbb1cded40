using MassTransit.Testing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// Verification by equality (issue 17): results of two workers at the reproducible kernel revision agree only when
/// their output CIDs are equal, with nothing read from storage; any pair with an older node is still compared within
/// the tolerance. The scheduler's consumers and dispatcher on a real Postgres; a stand-in for storage counts reads.
/// </summary>
public sealed class ReproducibleVerificationTests : SchedulerHarnessTest
{
    public ReproducibleVerificationTests()
        : base("scheduler-reproducible")
    {
    }

    private static WorkerOnline Reproducible(WorkerOnline w) => w with { KernelRevision = KernelArithmetic.Reproducible };

    // Two results one float32 ulp apart in one element: what two backends adding in different orders give.
    private static readonly float[] Exact = [1f, 2f, 3f];
    private static readonly float[] OneUlpOff = [1f, MathF.BitIncrement(2f), 3f];

    [Fact]
    public async Task Reproducible_replicas_with_equal_outputs_agree_by_cid_without_reading_storage()
    {
        await StartAsync();
        var first = await WorkerAsync(gflops: 100, shape: Reproducible);
        var second = await WorkerAsync(gflops: 50, shape: Reproducible);
        var job = await SubmitAsync(replicas: 2);

        await ReportAsync(await AssignedAsync(job.JobId), Output(Exact));
        await ReportAsync(await AssignedAsync(job.JobId, nth: 2), Output(Exact));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(2, done.Accepted!.Count);
        Assert.Equal(0, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
        Assert.Equal(0, StorageReads);
        // Each attempt carries the revision its worker announced when it was assigned: that is what chose the comparison.
        Assert.Equal(2, await QueryAsync<long>("select count(*) from attempts where job_id = @id and kernel_revision = 1", new { id = job.JobId.Value }));

        var listed = await WorkersAsync();
        Assert.All(listed.Where(w => w.WorkerId == first.WorkerId.Value || w.WorkerId == second.WorkerId.Value),
            w => Assert.Equal(KernelArithmetic.Reproducible, w.KernelRevision));
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task Reproducible_replicas_one_ulp_apart_disagree_though_the_tolerance_would_accept_them()
    {
        // The tolerance comparer takes these two as equal: it is what an older node's result gets.
        Assert.True(OutputTolerance.Agree(NpyArray.FromFloat32(Exact, 3), NpyArray.FromFloat32(OneUlpOff, 3)));

        await StartAsync();
        var first = await WorkerAsync(gflops: 100, shape: Reproducible);
        var second = await WorkerAsync(gflops: 50, shape: Reproducible);
        var third = await WorkerAsync(gflops: 10, shape: Reproducible);
        var job = await SubmitAsync(replicas: 2);

        var a = await AssignedAsync(job.JobId);
        Assert.Equal(first.WorkerId, a.WorkerId);
        await ReportAsync(a, Output(Exact));
        var b = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(second.WorkerId, b.WorkerId);
        await ReportAsync(b, Output(OneUlpOff));

        // They disagree: a tie-breaking attempt decides, and the result one ulp off loses.
        var c = await AssignedAsync(job.JobId, nth: 3);
        Assert.Equal(third.WorkerId, c.WorkerId);
        await ReportAsync(c, Output(Exact));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal([a.AttemptId, c.AttemptId], done.Accepted!.Select(x => x.AttemptId));
        Assert.Equal(Output(Exact), done.Outputs);
        var penalty = (await Harness.Published.SelectAsync<WorkerPenalized>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal(b.AttemptId, penalty.AttemptId);
        Assert.Equal(0, StorageReads);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task An_older_nodes_result_one_ulp_apart_still_agrees_within_the_tolerance()
    {
        await StartAsync();
        await WorkerAsync(gflops: 100, shape: Reproducible);
        var older = await WorkerAsync(gflops: 50); // announces no kernel revision
        var job = await SubmitAsync(replicas: 2);

        await ReportAsync(await AssignedAsync(job.JobId), Output(Exact));
        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(older.WorkerId, second.WorkerId);
        await ReportAsync(second, Output(OneUlpOff));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(2, done.Accepted!.Count);
        Assert.Equal(0, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
        Assert.Equal(2, StorageReads); // both tensors were read and compared element by element
        Assert.Null((await WorkersAsync()).Single(w => w.WorkerId == older.WorkerId.Value).KernelRevision);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_worker_that_drops_its_revision_mid_attempt_is_still_compared_by_the_one_it_was_assigned_under()
    {
        await StartAsync();
        var cheater = await WorkerAsync(gflops: 100, shape: Reproducible);
        await WorkerAsync(gflops: 50, shape: Reproducible);
        await WorkerAsync(gflops: 10, shape: Reproducible);
        var job = await SubmitAsync(replicas: 2);
        var a = await AssignedAsync(job.JobId);
        Assert.Equal(cheater.WorkerId, a.WorkerId);

        // Holding the attempt, the worker announces itself as an older node, hoping for the tolerance.
        var older = TestWorkerKeys.Registered(cheater with { KernelRevision = null, OccurredAt = DateTimeOffset.UtcNow });
        await Harness.Bus.Publish(older);
        await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == cheater.WorkerId && m.KernelRevision == null);
        Assert.Equal(0, await QueryAsync<long>("select count(*) from workers where id = @id and kernel_revision is not null", new { id = cheater.WorkerId.Value }));

        await ReportAsync(a, Output(OneUlpOff));
        await ReportAsync(await AssignedAsync(job.JobId, nth: 2), Output(Exact));
        var c = await AssignedAsync(job.JobId, nth: 3);
        await ReportAsync(c, Output(Exact));

        var done = await CompletedAsync(job.JobId);
        Assert.DoesNotContain(a.AttemptId, done.Accepted!.Select(x => x.AttemptId));
        Assert.Equal("rejected", await QueryAsync<string>("select status from attempts where id = @id", new { id = a.AttemptId.Value }));
        Assert.Equal(0, StorageReads);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task The_kernel_revision_is_signed_so_nobody_can_add_it_to_or_strip_it_from_an_announcement()
    {
        await StartAsync();
        var signed = TestWorkerKeys.Registered(new WorkerOnline
        {
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.New(),
            Region = "local",
            Slots = 1,
            Kernels = ["vector-add"],
            Devices = [],
            GflopsPerKernel = new Dictionary<string, double> { ["vector-add"] = 1 },
            PowerWatts = 10,
            KernelRevision = KernelArithmetic.Reproducible,
            OccurredAt = DateTimeOffset.UtcNow,
        });
        var olderSigned = TestWorkerKeys.Registered(signed with { KernelRevision = null, OccurredAt = signed.OccurredAt.AddSeconds(-1) });
        await _host.RegisterAsync(signed);

        var stripped = signed with { KernelRevision = null };
        var added = olderSigned with { KernelRevision = KernelArithmetic.Reproducible };
        foreach (var tampered in new[] { stripped, added })
        {
            await Harness.Bus.Publish(tampered);
            await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == tampered.WorkerId && m.OccurredAt == tampered.OccurredAt && m.KernelRevision == tampered.KernelRevision);
        }
        Assert.Equal(0, await QueryAsync<long>("select count(*) from workers where id = @id", new { id = signed.WorkerId.Value }));

        await Harness.Bus.Publish(signed);
        Assert.Equal(1, await Eventually.UntilAsync(
            () => QueryAsync<long>("select count(*) from workers where id = @id and kernel_revision = 1", new { id = signed.WorkerId.Value }),
            n => n == 1, TimeSpan.FromSeconds(10), "the signed announcement registering the worker at revision 1"));
        _host.AssertNoConsumerFaulted();
    }

    private async Task<List<WorkerView>> WorkersAsync()
    {
        var result = await NetworkApi.ListWorkers(_host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), CancellationToken.None);
        return Assert.IsType<Ok<List<WorkerView>>>(result).Value!;
    }
}
