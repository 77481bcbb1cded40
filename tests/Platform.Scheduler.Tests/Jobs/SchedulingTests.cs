using Dapper;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Placement;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Jobs;

/// <summary>The scheduler's consumers and dispatcher against a real Postgres, on the MassTransit test harness.</summary>
public sealed class SchedulingTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;
    private ITestHarness Harness => _host.Harness;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler");
        _host = await SchedulerTestHost.StartAsync(_env, o =>
        {
            o.MinimumStake = 0;
            o.SpotChecks = false;
            SchedulerTestHost.WorkersNeverBeat(o); // liveness is LifecycleTests' subject
            // Loaded once at start: every job here reaches the ready queue by this scheduler's intake or as a requeued
            // job, not by a reload (ReadyQueueReloadTests).
            o.ReadyQueueReload = TimeSpan.FromMinutes(10);
        }, services => services.AddHttpClient<InputCheck>().ConfigurePrimaryHttpMessageHandler(_storage.Handler));
        // The jobs' inputs as storage holds them: the bytes "a" and "b", which are no tensors.
        _storage.Put("a"u8.ToArray());
        _storage.Put("b"u8.ToArray());
    }

    private readonly StandInStorage _storage = new();

    public async Task DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync(); // fails the test if a consumer threw
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }

    private static readonly AccountId Client = AccountId.New();
    private static readonly AccountId Operator = AccountId.New();

    private static JobSubmitted Submitted(string kernel = "matmul") => new()
    {
        JobId = JobId.New(),
        ClientAccountId = Client,
        Spec = new JobSpec { Kernel = kernel, Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) } },
        EstimatedGflop = 1,
        OccurredAt = DateTimeOffset.UtcNow,
    };

    private static WorkerOnline Online(int slots = 1, params string[] kernels) => Online(10, slots, kernels);

    private static WorkerOnline Online(double gflops, int slots = 1, params string[] kernels) => TestWorkerKeys.Registered(new()
    {
        WorkerId = WorkerId.New(),
        OperatorAccountId = Operator,
        Region = "local",
        Slots = slots,
        Kernels = kernels.Length > 0 ? kernels : ["vector-add", "matmul"],
        Devices = [new DeviceInfo { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = 1024 }],
        GflopsPerKernel = new Dictionary<string, double> { ["matmul"] = gflops },
        PowerWatts = 30,
        OccurredAt = DateTimeOffset.UtcNow,
    });

    private async Task FundAsync(JobSubmitted job)
    {
        await Harness.Bus.Publish(Bundle.Of(job));
        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
    }

    private async Task<AssignJob> AssignedAsync(JobId job, int nth = 1) =>
        (await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == job).Skip(nth - 1).First()).Context.Message;

    private async Task<string> StatusAsync(JobId job)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<string>("select status from jobs where id = @id", new { id = job.Value }) ?? "(none)";
    }


    [Fact]
    public async Task Funded_job_is_assigned_to_an_online_worker_with_a_lease()
    {
        var worker = Online();
        await _host.AnnounceAsync(worker);
        var job = Submitted();

        await FundAsync(job);

        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(worker.WorkerId, assign.WorkerId);
        Assert.True(assign.LeaseDeadline > DateTimeOffset.UtcNow);
        Assert.Equal(job.Spec.Inputs, assign.Spec.Inputs);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Status == "assigned"));
    }

    [Fact]
    public async Task Funding_that_arrives_before_the_submission_still_queues_the_job()
    {
        var job = Submitted();

        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        await _host.HandledAsync<JobFunded>(m => m.JobId == job.JobId);
        Assert.Equal("pending", await StatusAsync(job.JobId));
        await Harness.Bus.Publish(Bundle.Of(job));

        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Status == "queued"));
    }

    [Fact]
    public async Task Job_waits_while_no_worker_runs_its_kernel_then_starts_when_one_appears()
    {
        await _host.AnnounceAsync(Online(1, "vector-add"));
        var job = Submitted("matmul");
        await FundAsync(job);
        await Eventually.UntilAsync(() => StatusAsync(job.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "job queued");

        var fitting = Online(1, "matmul");
        await _host.AnnounceAsync(fitting);

        Assert.Equal(fitting.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);
    }

    [Fact]
    public async Task A_job_behind_a_full_window_of_jobs_no_worker_runs_is_still_placed()
    {
        // A pass first reads a window sized by the free slots (one slot here: the minimum window of 8 jobs); 40 jobs
        // nobody can run fill it, so only the widened look further down the queue finds the one the worker can run.
        await _host.AnnounceAsync(Online(1, "vector-add"));
        var blocked = Enumerable.Range(0, 40).Select(_ => Submitted("matmul")).ToList();
        foreach (var job in blocked)
            await FundAsync(job);
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await _host.Database.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from jobs where status = 'queued'");
        }, n => n == blocked.Count, TimeSpan.FromSeconds(20), "the 40 jobs queued");

        var runnable = Submitted("vector-add");
        await FundAsync(runnable);

        Assert.Equal("assigned", await Eventually.UntilAsync(() => StatusAsync(runnable.JobId), s => s == "assigned", TimeSpan.FromSeconds(20), "job assigned"));
        foreach (var job in blocked)
            Assert.Equal(0, await _host.OutboxCountAsync<AssignJob>(job.JobId.Value));
    }

    [Fact]
    public async Task A_worker_never_gets_more_attempts_than_slots()
    {
        var worker = Online(slots: 1);
        await _host.AnnounceAsync(worker);
        var first = Submitted();
        var second = Submitted();
        await FundAsync(first);
        await FundAsync(second);
        var running = (await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == first.JobId || m.Context.Message.JobId == second.JobId).First()).Context.Message;
        var waiting = running.JobId == first.JobId ? second : first;
        // Queued, not assigned: its funding may still be on its way, so wait for it to reach the queue.
        await Eventually.UntilAsync(() => StatusAsync(waiting.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "the second job queued");

        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptCompleted
        {
            JobId = running.JobId,
            AttemptId = running.AttemptId,
            WorkerId = worker.WorkerId,
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            OccurredAt = DateTimeOffset.UtcNow,
        }));

        Assert.Equal(worker.WorkerId, (await AssignedAsync(waiting.JobId)).WorkerId);
    }

    [Fact]
    public async Task Completed_attempt_completes_the_job_once_with_the_operator_to_pay()
    {
        var worker = Online();
        await _host.AnnounceAsync(worker);
        var job = Submitted();
        await FundAsync(job);
        var assign = await AssignedAsync(job.JobId);
        var completed = TestWorkerKeys.Signed(new AttemptCompleted
        {
            JobId = job.JobId,
            AttemptId = assign.AttemptId,
            WorkerId = worker.WorkerId,
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            OccurredAt = DateTimeOffset.UtcNow,
        });

        await Harness.Bus.Publish(completed);
        await Harness.Bus.Publish(completed);
        await _host.HandledAsync<AttemptCompleted>(m => m.JobId == job.JobId, count: 2);

        var done = await Harness.FirstPublishedAsync<JobCompleted>(m => m.JobId == job.JobId);
        Assert.Equal(Operator, done.OperatorAccountId);
        Assert.Equal(Client, done.ClientAccountId);
        Assert.Equal("completed", await StatusAsync(job.JobId));
        Assert.Equal(1, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
    }

    [Fact]
    public async Task Result_from_a_stale_attempt_is_ignored()
    {
        var worker = Online();
        await _host.AnnounceAsync(worker);
        var job = Submitted();
        await FundAsync(job);
        await AssignedAsync(job.JobId);

        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptCompleted
        {
            JobId = job.JobId,
            AttemptId = AttemptId.New(),
            WorkerId = worker.WorkerId,
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("forged"u8) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            OccurredAt = DateTimeOffset.UtcNow,
        }));
        await _host.HandledAsync<AttemptCompleted>(m => m.JobId == job.JobId);

        Assert.Equal(0, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
        Assert.Equal("assigned", await StatusAsync(job.JobId));
    }

    [Fact]
    public async Task Failed_attempt_fails_the_job_with_its_reason()
    {
        var worker = Online();
        await _host.AnnounceAsync(worker);
        var job = Submitted();
        await FundAsync(job);
        var assign = await AssignedAsync(job.JobId);

        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptFailed
        {
            JobId = job.JobId,
            AttemptId = assign.AttemptId,
            WorkerId = worker.WorkerId,
            Reason = "input_invalid",
            Detail = "a is not a tensor",
            OccurredAt = DateTimeOffset.UtcNow,
        }));

        // One operator: the network reads the inputs itself, and agrees.
        var failed = (await Harness.Published.SelectAsync<JobFailed>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal("input_invalid", failed.Reason);
        Assert.StartsWith("input 'a' is not a valid .npy tensor", failed.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_retry_goes_to_the_other_worker_while_a_heartbeat_of_that_worker_is_being_written()
    {
        var failing = Online(gflops: 100);
        var other = Online(gflops: 1); // slower: the job goes to the failing worker first
        foreach (var worker in new[] { failing, other })
        {
            await _host.AnnounceAsync(worker);
            await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == worker.WorkerId);
        }
        var job = Submitted();
        await FundAsync(job);
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(failing.WorkerId, first.WorkerId);

        // The other worker's heartbeat is in its transaction, holding the worker's row as WorkerHeartbeatConsumer
        // does, while the failed attempt's job is placed again.
        await using var beat = await _host.Database.OpenConnectionAsync();
        await using var beating = await beat.BeginTransactionAsync();
        await beat.ExecuteAsync("select 1 from workers where id = @id for update", new { id = other.WorkerId.Value }, beating);
        await _host.PublishHandledAsync(TestWorkerKeys.Signed(new AttemptFailed
        {
            JobId = job.JobId,
            AttemptId = first.AttemptId,
            WorkerId = failing.WorkerId,
            Reason = "worker_error",
            Detail = "out of memory",
            OccurredAt = DateTimeOffset.UtcNow,
        }));

        var second = await AssignedAsync(job.JobId, nth: 2);
        await beating.CommitAsync();
        Assert.Equal(other.WorkerId, second.WorkerId);
    }

    [Fact]
    public async Task Dispatch_passes_running_at_once_on_one_database_never_assign_a_job_twice_or_overfill_a_worker()
    {
        // Every pass is one transaction, whichever scheduler instance runs it: five at once here (four of the test's
        // and the host's own, poked by every job queued and every worker coming online) stand for five schedulers.
        const int jobCount = 60;
        var jobs = Enumerable.Range(0, jobCount).Select(_ => Submitted("vector-add")).ToList();
        foreach (var job in jobs)
            await FundAsync(job);
        var ids = jobs.Select(j => j.JobId.Value).ToArray();
        await Eventually.UntilAsync(async () =>
        {
            await using var c = await _host.Database.OpenConnectionAsync();
            return await c.ExecuteScalarAsync<int>("select count(*) from jobs where id = any(@ids) and status = 'queued'", new { ids });
        }, n => n == jobCount, TimeSpan.FromSeconds(30), "every job queued");

        var workers = Enumerable.Range(0, 6).Select(_ => Online(slots: 3, "vector-add")).ToList();
        var dispatcher = _host.Services.GetRequiredService<Dispatcher>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var passes = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            var assigned = 0;
            while (assigned < workers.Count * 3 && !stop.IsCancellationRequested)
            {
                await dispatcher.DispatchBatchAsync(stop.Token);
                await using var c = await _host.Database.OpenConnectionAsync();
                assigned = await c.ExecuteScalarAsync<int>("select count(*) from jobs where id = any(@ids) and status = 'assigned'", new { ids });
            }
        })).ToList();
        await Task.WhenAll(workers.Select(w => _host.AnnounceAsync(w)));
        await Task.WhenAll(passes);

        await using var connection = await _host.Database.OpenConnectionAsync();
        var perWorker = (await connection.QueryAsync<(string WorkerId, int Jobs)>(
            "select worker_id, count(*)::int from jobs where id = any(@ids) and status = 'assigned' group by worker_id", new { ids })).ToList();
        Assert.Equal(workers.Count * 3, perWorker.Sum(w => w.Jobs));
        Assert.All(perWorker, w => Assert.True(w.Jobs <= 3, $"worker {w.WorkerId} holds {w.Jobs} jobs in its 3 slots"));
        var attempts = (await connection.QueryAsync<(string JobId, int Attempts)>(
            "select job_id, count(*)::int from attempts where job_id = any(@ids) group by job_id", new { ids })).ToList();
        Assert.Equal(workers.Count * 3, attempts.Count);
        Assert.All(attempts, a => Assert.Equal(1, a.Attempts));
        Assert.Equal(workers.Count * 3, await connection.ExecuteScalarAsync<int>("select coalesce(sum(attempt_count), 0)::int from jobs where id = any(@ids)", new { ids }));
        foreach (var job in jobs)
            Assert.True(await _host.OutboxCountAsync<AssignJob>(job.JobId.Value) <= 1);
    }

    [Fact]
    public async Task Rejected_job_is_never_assigned()
    {
        await _host.AnnounceAsync(Online());
        var job = Submitted();
        await Harness.Bus.Publish(Bundle.Of(job));
        await Harness.Bus.Publish(new JobRejected { JobId = job.JobId, Reason = "insufficient_credits", Detail = "no credits", OccurredAt = DateTimeOffset.UtcNow });
        await Eventually.UntilAsync(() => StatusAsync(job.JobId), s => s == "rejected", TimeSpan.FromSeconds(20), "job rejected");

        // A late JobFunded (reordered) must not revive it.
        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        await _host.HandledAsync<JobFunded>(m => m.JobId == job.JobId);
        await _host.Services.GetRequiredService<Dispatcher>().DispatchBatchAsync(CancellationToken.None);

        Assert.Equal("rejected", await StatusAsync(job.JobId));
        Assert.Equal(0, await _host.OutboxCountAsync<AssignJob>(job.JobId.Value));
    }
}
