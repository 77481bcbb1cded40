using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// Spot checks of jobs that only one operator's nodes can take (pinned to a region or a device): the check runs on
/// another operator's worker outside the pin, and a result nobody else can check is delivered without mint.
/// </summary>
public sealed class PinnedSpotCheckTests : SchedulerHarnessTest
{
    public PinnedSpotCheckTests()
        : base("scheduler-pinned-checks")
    {
    }

    private Task<WorkerOnline> WorkerAsync(double gflops, string region, AccountId? @operator = null, string device = "cpu") =>
        WorkerAsync(gflops, @operator, shape: w => w with
        {
            Region = region,
            Devices = [new DeviceInfo { Kind = device, Name = "test", Backend = device == "gpu" ? "opencl" : "simd", MemoryMb = 1024 }],
        });

    [Fact]
    public async Task A_job_pinned_to_a_region_or_device_of_one_operator_is_checked_by_another_operator_outside_the_pin()
    {
        await StartAsync(o => o.SpotChecks = true);
        var owner = AccountId.New();
        var pinned = await WorkerAsync(gflops: 100, "eu-pinned", owner, device: "gpu");
        await WorkerAsync(gflops: 90, "eu-pinned", owner); // the same operator's other node may not check it
        var checker = await WorkerAsync(gflops: 10, "us-elsewhere");

        foreach (var requirements in new[] { new JobRequirements { Region = "eu-pinned" }, new JobRequirements { Device = "gpu" } })
        {
            var job = await SubmitAsync(requirements: requirements);
            var first = await AssignedAsync(job.JobId);
            Assert.Equal(pinned.WorkerId, first.WorkerId);
            await ReportAsync(first, Output(1, 2, 3));

            var check = await AssignedAsync(job.JobId, nth: 2);
            Assert.Equal(checker.WorkerId, check.WorkerId);
            await ReportAsync(check, Output(1, 2, 3));

            var done = await CompletedAsync(job.JobId);
            Assert.Equal(JobReasons.SpotChecked, done.Reason);
            Assert.Equal([pinned.WorkerId, checker.WorkerId], done.Accepted!.Select(a => a.WorkerId));
            Assert.Equal([false, true], done.Accepted!.Select(a => a.SpotCheck));
            Assert.All(done.Accepted!, a => Assert.False(a.MintWithheld));
        }
        Assert.Equal(2, await QueryAsync<int>("select streak from worker_trust where worker_id = @id", new { id = pinned.WorkerId.Value }));
    }

    [Fact]
    public async Task With_one_operator_in_the_network_a_result_due_a_check_is_delivered_without_mint_and_builds_no_trust()
    {
        await StartAsync(o => o.SpotChecks = true);
        var owner = AccountId.New();
        var only = await WorkerAsync(gflops: 100, "eu-pinned", owner);
        await WorkerAsync(gflops: 90, "us-elsewhere", owner); // anywhere, the same operator cannot check itself

        for (var i = 0; i < 2; i++)
        {
            var job = await SubmitAsync(requirements: new JobRequirements { Region = "eu-pinned" });
            var assign = await AssignedAsync(job.JobId);
            Assert.Equal(only.WorkerId, assign.WorkerId);
            await ReportAsync(assign, Output(1, 2, 3));

            var done = await CompletedAsync(job.JobId);
            Assert.Equal(JobReasons.Accepted, done.Reason);
            var accepted = Assert.Single(done.Accepted!);
            Assert.True(accepted.MintWithheld);
            Assert.False(accepted.SpotCheck);
            Assert.Contains("earns no mint", done.Detail);
        }
        // Unverified results prove nothing: the worker's streak does not grow, so its next result is due a check too.
        await using var connection = await _host.Database.OpenConnectionAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<int?>("select streak from worker_trust where worker_id = @id", new { id = only.WorkerId.Value }) ?? 0);
    }
}
