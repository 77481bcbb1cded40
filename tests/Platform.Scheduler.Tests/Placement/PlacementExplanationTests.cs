using MassTransit.Testing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Placement;

/// <summary>
/// "Why does my node get no work?": each reason the placement explanation gives, produced by a worker set up to
/// cause it, read back as GET /v1/workers/{id}/placement answers it.
/// </summary>
public sealed class PlacementExplanationTests() : SchedulerHarnessTest("scheduler-placement-reasons")
{
    private static DeviceInfo Cpu(long memoryMb = 1024) => new() { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = memoryMb };

    /// <summary>The worker's latest placement once the log has been written.</summary>
    private async Task<PlacementDecisionView> LatestAsync(WorkerId worker, Func<PlacementDecisionView, bool>? which = null)
    {
        var writer = _host.Services.GetRequiredService<PlacementLogWriter>();
        var view = await Eventually.UntilAsync(async () =>
        {
            await writer.FlushNowAsync(CancellationToken.None);
            return await PlacementAsync(worker);
        }, v => v.Recent.Any(which ?? (_ => true)), TimeSpan.FromSeconds(10), $"a placement explained for worker {worker}");
        return view.Recent.First(which ?? (_ => true));
    }

    [Fact]
    public async Task Every_worker_that_could_not_take_a_job_is_told_the_requirement_it_missed_and_what_to_do()
    {
        await StartAsync();
        var chosen = await WorkerAsync(gflops: 100);
        var slower = await WorkerAsync(gflops: 10);
        var noKernel = await WorkerAsync(gflops: 100, shape: w => w with { Kernels = ["gemm"], GflopsPerKernel = new Dictionary<string, double> { ["gemm"] = 100 } });
        var gpuOnly = await WorkerAsync(gflops: 100, shape: w => w with { Devices = [new DeviceInfo { Kind = "gpu", Name = "test", Backend = "opencl", MemoryMb = 4096 }] });
        var elsewhere = await WorkerAsync(gflops: 100, shape: w => w with { Region = "eu-west" });
        var small = await WorkerAsync(gflops: 100, shape: w => w with { Devices = [Cpu(memoryMb: 256)] });
        var unstaked = await WorkerAsync(gflops: 100, stake: 4);
        var distrusted = await WorkerAsync(gflops: 100);
        await ExecuteAsync("update workers set reputation = 0.2 where id = @id", new { id = distrusted.WorkerId.Value });

        var job = await SubmitAsync(requirements: new JobRequirements { Device = "cpu", Region = "local", MinMemoryMb = 512 });
        Assert.Equal(chosen.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);

        var expected = new (WorkerOnline Worker, string Code, string Says, string? Fix)[]
        {
            (chosen, "chosen", "Chosen for a vector-add job", null),
            (slower, "slower_than_chosen", $"Worker {chosen.WorkerId} was chosen", "Faster hardware"),
            (noKernel, "kernel_unsupported", "It does not run vector-add.", "Enable a backend that runs vector-add"),
            (gpuOnly, "device_mismatch", "The job asked for a cpu; this worker has gpu.", "Nothing to fix unless"),
            (elsewhere, "region_mismatch", "The job asked for region local; this worker is in eu-west.", "set Worker:Region"),
            (small, "memory_too_small", "The job needs 512 MB of memory; this worker offers 256 MB.", "Worker:MemoryMb"),
            (unstaked, "stake_too_low", "Its operator has staked 4 credits; workers get work once their operator has staked 10.", "./platform account stake 6"),
            (distrusted, "reputation_too_low", "Its reputation is 0.20, below the 0.30 a worker needs", "new identity"),
        };
        foreach (var (worker, code, says, fix) in expected)
        {
            var latest = await LatestAsync(worker.WorkerId);
            Assert.Equal(code, latest.Code);
            Assert.Contains(says, latest.Message);
            Assert.Equal(chosen.WorkerId.Value, latest.ChosenWorkerId);
            if (fix is null)
                Assert.Null(latest.Fix);
            else
                Assert.Contains(fix, latest.Fix);
        }

        // "Slower by X": the estimates it was compared on, and the ratio (0.105 s against 0.015 s with 5 ms latency).
        Assert.Contains("this worker would take 0.105 s against 0.015 s, 7.0× as much", (await LatestAsync(slower.WorkerId)).Message);

        var unstakedView = await PlacementAsync(unstaked.WorkerId);
        Assert.False(unstakedView.GetsWork);
        Assert.Equal("Gets no work: its operator has staked 4 of the 10 credits workers need.", unstakedView.Status);
        Assert.Equal("stake_too_low", Assert.Single(unstakedView.Reasons).Code);
        Assert.True((await PlacementAsync(chosen.WorkerId)).GetsWork);
    }

    [Fact]
    public async Task A_one_slot_worker_is_handed_many_tiny_jobs_at_once_while_a_whole_job_waits_for_the_slot()
    {
        // Six tiny jobs per slot, three given: half the slot's units are left, which a whole job cannot use.
        await StartAsync(o => o.TinyJobsPerSlot = 6);
        var worker = await WorkerAsync(gflops: 100);
        var tiny = new List<JobSubmitted>();
        for (var i = 0; i < 3; i++)
            tiny.Add(await SubmitAsync(gflop: 1e-6));

        // All three on the worker's one slot, none finished.
        var assigned = new List<AssignJob>();
        foreach (var job in tiny)
            assigned.Add(await AssignedAsync(job.JobId));
        Assert.All(assigned, a => Assert.Equal(worker.WorkerId, a.WorkerId));
        Assert.Equal(3, await QueryAsync<int>("select count(*) from jobs where worker_id = @id and status = 'assigned' and slot_units = 1",
            new { id = worker.WorkerId.Value }));

        // A job that is not tiny needs the whole slot: a pass considered it for the units left and passed the worker over.
        var whole = await SubmitAsync();
        var latest = await LatestAsync(worker.WorkerId, d => d.Code == "no_free_slot");
        Assert.Null(latest.ChosenWorkerId);
        Assert.Equal("queued", await QueryAsync<string>("select status from jobs where id = @id", new { id = whole.JobId.Value }));

        foreach (var a in assigned)
            await ReportAsync(a, Output(1, 2, 3));
        Assert.Equal(worker.WorkerId, (await AssignedAsync(whole.JobId)).WorkerId);
        Assert.Equal(6, await QueryAsync<int>("select slot_units from jobs where id = @id", new { id = whole.JobId.Value }));
    }

    [Fact]
    public async Task A_busy_worker_is_passed_over_for_having_no_free_slot()
    {
        await StartAsync();
        var busy = await WorkerAsync(gflops: 100);
        var other = await WorkerAsync(gflops: 10);
        var first = await SubmitAsync();
        Assert.Equal(busy.WorkerId, (await AssignedAsync(first.JobId)).WorkerId);

        var second = await SubmitAsync();
        Assert.Equal(other.WorkerId, (await AssignedAsync(second.JobId)).WorkerId);
        var latest = await LatestAsync(busy.WorkerId, d => d.Code != "chosen");
        Assert.Equal("no_free_slot", latest.Code);
        Assert.Equal("All 1 of its slots were busy.", latest.Message);
        Assert.Equal(other.WorkerId.Value, latest.ChosenWorkerId);
    }

    [Fact]
    public async Task A_replica_skips_the_workers_of_the_operator_that_returned_the_first_result()
    {
        await StartAsync();
        var @operator = AccountId.New();
        var first = await WorkerAsync(gflops: 100, @operator);
        var sibling = await WorkerAsync(gflops: 90, @operator);
        var other = await WorkerAsync(gflops: 10);
        var job = await SubmitAsync(replicas: 2);
        var assigned = await AssignedAsync(job.JobId);
        Assert.Equal(first.WorkerId, assigned.WorkerId);
        await ReportAsync(assigned, Output(1, 2, 3));

        Assert.Equal(other.WorkerId, (await AssignedAsync(job.JobId, nth: 2)).WorkerId);
        var latest = await LatestAsync(sibling.WorkerId, d => d.Code != "chosen");
        Assert.Equal("same_operator_as_result", latest.Code);

        // The replica is a placement of its own: the first worker keeps the record of being chosen for the first.
        await LatestAsync(first.WorkerId, d => d.Code == "same_operator_as_result");
        Assert.Equal(["same_operator_as_result", "chosen"], (await PlacementAsync(first.WorkerId)).Recent.Select(d => d.Code));
    }

    [Fact]
    public async Task A_worker_that_failed_a_job_is_passed_over_for_its_retry()
    {
        await StartAsync();
        var failing = await WorkerAsync(gflops: 100);
        var other = await WorkerAsync(gflops: 10);
        var job = await SubmitAsync();
        var assigned = await AssignedAsync(job.JobId);
        Assert.Equal(failing.WorkerId, assigned.WorkerId);
        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptFailed
        {
            JobId = job.JobId,
            AttemptId = assigned.AttemptId,
            WorkerId = assigned.WorkerId,
            Reason = "worker_error",
            Detail = "out of memory",
            OccurredAt = DateTimeOffset.UtcNow,
        }));

        Assert.Equal(other.WorkerId, (await AssignedAsync(job.JobId, nth: 2)).WorkerId);
        var latest = await LatestAsync(failing.WorkerId, d => d.Code != "chosen");
        Assert.Equal("failed_this_job", latest.Code);
    }

    [Fact]
    public async Task A_worker_no_job_has_been_placed_with_says_the_queue_was_empty_and_an_unknown_one_is_not_found()
    {
        await StartAsync();
        var idle = await WorkerAsync(gflops: 10);
        var view = await PlacementAsync(idle.WorkerId);
        Assert.True(view.GetsWork);
        Assert.Empty(view.Recent);
        Assert.Contains("no job has been placed since it came online", view.Status);

        var unknown = await WorkerPlacement.Get("no-such-worker", _host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(),
            TimeProvider.System, CancellationToken.None);
        Assert.Equal(404, Assert.IsType<ProblemHttpResult>(unknown.Result).StatusCode);
    }
}
