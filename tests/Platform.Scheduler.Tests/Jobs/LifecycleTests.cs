using System.Security.Cryptography;
using Dapper;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Scheduler.Placement;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Jobs;

/// <summary>Leases, lost workers, retries, cancelling, regions, policies and fair share, on a real Postgres.</summary>
public sealed class LifecycleTests : IAsyncLifetime
{
    // Wide enough that a busy two-core machine pausing the test's beats for a second or two cannot turn an expired
    // lease into a lost worker (or a kept lease into an expired one): a worker is lost after three missed intervals.
    private static readonly TimeSpan Beat = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(3);
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;
    private readonly CancellationTokenSource _stop = new();
    private ITestHarness Harness => _host.Harness;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-lifecycle");
        _host = await SchedulerTestHost.StartAsync(_env, o =>
        {
            o.HeartbeatInterval = Beat;
            o.LeaseDuration = Lease;
            o.GracePeriod = Grace;
            o.MaxAttempts = 2;
            o.DispatchInterval = TimeSpan.FromMilliseconds(200);
            o.MinimumStake = 0;
            o.SpotChecks = false;
            o.TinyJobsPerSlot = 4; // only the tiny-job test's job is tiny: every other job here takes a whole slot
        });
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _host.DisposeAsync(); // fails the test if a consumer threw
        }
        finally
        {
            await _env.DisposeAsync();
            _stop.Dispose();
        }
    }

    private static readonly AccountId Operator = AccountId.New();

    private static WorkerOnline Online(string region = "eu-west", double gflops = 10, double watts = 100, int slots = 1) => TestWorkerKeys.Registered(new()
    {
        WorkerId = WorkerId.New(),
        OperatorAccountId = Operator,
        Region = region,
        Slots = slots,
        Kernels = ["matmul"],
        Devices = [new DeviceInfo { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = 8000 }],
        GflopsPerKernel = new Dictionary<string, double> { ["matmul"] = gflops },
        PowerWatts = watts,
        OccurredAt = DateTimeOffset.UtcNow,
    });

    /// <summary>
    /// Registers the worker and beats for it every 100 ms until the test ends or <paramref name="silence"/> is
    /// cancelled, listing <paramref name="running"/> (by default every attempt it holds, as a real worker does).
    /// </summary>
    private async Task<WorkerOnline> LiveAsync(WorkerOnline worker, Func<IReadOnlyList<AttemptId>>? running = null, Func<WorkerHeartbeat, WorkerHeartbeat>? sign = null,
        CancellationToken silence = default)
    {
        sign ??= TestWorkerKeys.Signed;
        running ??= Holding(worker);
        await _host.AnnounceAsync(worker);
        // Registered before the test goes on: a job funded meanwhile must see every worker the test set up.
        await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == worker.WorkerId);
        var stop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, silence);
        _ = Task.Run(async () =>
        {
            using var _ = stop;
            using var beat = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            while (await beat.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
            {
                await Harness.Bus.Publish(sign(new WorkerHeartbeat
                {
                    WorkerId = worker.WorkerId,
                    ActiveAttempts = 0,
                    Attempts = running(),
                    OccurredAt = DateTimeOffset.UtcNow,
                }), stop.Token);
            }
        });
        return worker;
    }

    private async Task<JobSubmitted> FundedAsync(AccountId? client = null, string? region = null, string? policy = null, double gflop = 1)
    {
        var job = new JobSubmitted
        {
            JobId = JobId.New(),
            ClientAccountId = client ?? AccountId.New(),
            Spec = new JobSpec
            {
                Kernel = "matmul",
                Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
                Requirements = new JobRequirements { Region = region },
                Policy = policy,
            },
            EstimatedGflop = gflop,
            OccurredAt = DateTimeOffset.UtcNow,
        };
        await Harness.Bus.Publish(Bundle.Of(job));
        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        return job;
    }

    /// <summary>
    /// What a working worker lists in its beats: every attempt it holds, so its leases last however slowly the
    /// test goes on. (Read from the scheduler's database: the harness's message lists wait for a match.)
    /// </summary>
    private Func<IReadOnlyList<AttemptId>> Holding(WorkerOnline worker) => () =>
    {
        using var connection = _host.Database.OpenConnection();
        return [.. connection.Query<string>("select attempt_id from jobs where worker_id = @id and status in ('assigned', 'running')",
            new { id = worker.WorkerId.Value }).Select(AttemptId.From)];
    };

    private async Task<AssignJob> AssignedAsync(JobId job, int nth = 1) =>
        (await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == job).Skip(nth - 1).First()).Context.Message;

    private async Task<T> ScalarAsync<T>(string sql, object parameters)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return (await connection.ExecuteScalarAsync<T>(sql, parameters))!;
    }

    private async Task<string> StatusAsync(JobId job)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<string>("select status from jobs where id = @id", new { id = job.Value }) ?? "(none)";
    }

    private Task CompleteAsync(AssignJob assign) => Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptCompleted
    {
        JobId = assign.JobId,
        AttemptId = assign.AttemptId,
        WorkerId = assign.WorkerId,
        Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
        Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
        OccurredAt = DateTimeOffset.UtcNow,
    }));

    [Fact]
    public async Task Expired_lease_gives_the_job_to_another_worker_and_the_stale_result_is_ignored()
    {
        var silent = await LiveAsync(Online(gflops: 100), running: () => []); // beats, but never renews the attempt
        // The other worker is online from the start (slower, so the job goes to the silent one first): had it come
        // only after the first assignment, a slow machine could expire the lease before it did, and the silent
        // worker, still beating and the only one there, would get the job back.
        var other = await LiveAsync(Online(gflops: 1));
        var job = await FundedAsync();
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(silent.WorkerId, first.WorkerId);

        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(other.WorkerId, second.WorkerId);

        await CompleteAsync(first); // the first worker wakes up and reports late
        await _host.HandledAsync<AttemptCompleted>(m => m.AttemptId == first.AttemptId);
        Assert.Equal("assigned", await StatusAsync(job.JobId));
        await CompleteAsync(second);
        var completed = await Harness.FirstPublishedAsync<JobCompleted>(m => m.JobId == job.JobId);
        Assert.Equal(second.AttemptId, completed.AttemptId);
        Assert.Equal(1, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Reason == "lease_expired"));
    }

    [Fact]
    public async Task Heartbeats_that_list_an_attempt_keep_its_lease()
    {
        var worker = await LiveAsync(Online());
        var job = await FundedAsync();
        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(worker.WorkerId, assign.WorkerId);

        // Unrenewed, the lease would run out after 4 s and the attempt end as lease_expired 3 s later, the job going
        // back to this worker, the only one there. Twice that long, the first attempt is still the only one.
        var deadline = DateTimeOffset.UtcNow + 2 * (Lease + Grace);
        await Eventually.UntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow), now => now > deadline, 2 * (Lease + Grace) + TimeSpan.FromSeconds(10),
            "two leases and grace periods to pass");
        Assert.Equal("assigned", await StatusAsync(job.JobId));
        Assert.Equal(assign.AttemptId.Value, await ScalarAsync<string>("select attempt_id from jobs where id = @id", new { id = job.JobId.Value }));
        Assert.Equal(1, await _host.OutboxCountAsync<AssignJob>(job.JobId.Value));
        Assert.Equal(1L, await ScalarAsync<long>("select count(*) from attempts where job_id = @id", new { id = job.JobId.Value }));
        Assert.Equal(0L, await ScalarAsync<long>(
            "select count(*) from outbox where message_type = @type and body->>'jobId' = @id and body->>'reason' = 'lease_expired'",
            new { type = typeof(JobStatusChanged).FullName, id = job.JobId.Value }));
        Assert.Equal(0, await _host.OutboxCountAsync<JobFailed>(job.JobId.Value));
    }

    [Fact]
    public async Task A_tiny_job_waiting_in_a_beating_nodes_queue_keeps_its_lease_though_the_node_does_not_list_it()
    {
        // Tiny jobs share a slot, so they wait in the node's broker queue, where the node cannot see them to list
        // them. Its beats renew them all the same; a job that takes a whole slot and goes unlisted expires (above).
        var worker = await LiveAsync(Online(), running: () => []);
        var job = await FundedAsync(gflop: 0.0001);
        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(worker.WorkerId, assign.WorkerId);
        Assert.Equal(1, await ScalarAsync<int>("select slot_units from jobs where id = @id", new { id = job.JobId.Value }));

        // Unrenewed, the lease would run out after 4 s and the attempt end as lease_expired 3 s later.
        var deadline = DateTimeOffset.UtcNow + 2 * (Lease + Grace);
        await Eventually.UntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow), now => now > deadline, 2 * (Lease + Grace) + TimeSpan.FromSeconds(10),
            "two leases and grace periods to pass");
        Assert.Equal("assigned", await StatusAsync(job.JobId));
        Assert.Equal(1L, await ScalarAsync<long>("select count(*) from attempts where job_id = @id", new { id = job.JobId.Value }));
        // Still renewed by the beats: the deadline moves ahead of now again (polled: on a busy machine a beat may be
        // late at any one instant; unrenewed, the deadline is long past and stays so).
        await Eventually.UntilAsync(async () => await ScalarAsync<DateTime>("select lease_deadline from jobs where id = @id", new { id = job.JobId.Value }),
            lease => lease > DateTime.UtcNow + Lease / 2, Lease + Grace, "the lease was renewed by the latest beats");

        await CompleteAsync(assign);
        Assert.Equal(assign.AttemptId, (await Harness.FirstPublishedAsync<JobCompleted>(m => m.JobId == job.JobId)).AttemptId);
    }

    [Fact]
    public async Task Unsigned_or_wrongly_signed_heartbeats_neither_keep_a_worker_online_nor_renew_its_lease()
    {
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var forged = 0;
        AttemptId? running = null;
        // The worker beats with its own key until it has the job (so a slow dispatch on a busy machine cannot find it
        // silent first); from then on someone else beats for it, listing its attempt: every other beat unsigned, the
        // rest signed with a key the worker never registered.
        var impersonated = await LiveAsync(Online(gflops: 100), () => running is { } a ? [a] : [], beat => running is null
            ? TestWorkerKeys.Signed(beat)
            : Interlocked.Increment(ref forged) % 2 == 0
                ? beat
                : beat with { Signature = WorkerMessageSignature.Sign(otherKey, WorkerMessageSignature.Payload(beat)) });
        var job = await FundedAsync();
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(impersonated.WorkerId, first.WorkerId);
        running = first.AttemptId;

        var healthy = await LiveAsync(Online(gflops: 1));

        Assert.Equal(healthy.WorkerId, (await AssignedAsync(job.JobId, nth: 2)).WorkerId);
        Assert.True(Volatile.Read(ref forged) > 2);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.AttemptId == first.AttemptId
            && m.Reason is "worker_lost" or "lease_expired"));
    }

    [Fact]
    public async Task A_forged_AttemptFailed_does_not_end_the_real_attempt()
    {
        var worker = await LiveAsync(Online(gflops: 100));
        var attacker = await LiveAsync(Online(gflops: 1));
        var job = await FundedAsync();
        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(worker.WorkerId, assign.WorkerId);

        // An input reason would fail the job outright: unsigned, signed with a stranger's key, and validly signed by
        // another registered worker that does not hold the attempt.
        var failure = new AttemptFailed
        {
            JobId = job.JobId,
            AttemptId = assign.AttemptId,
            WorkerId = worker.WorkerId,
            Reason = "input_invalid",
            Detail = "forged",
            OccurredAt = DateTimeOffset.UtcNow,
        };
        using var strangerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var forgeries = new[]
        {
            failure,
            failure with { Signature = WorkerMessageSignature.Sign(strangerKey, WorkerMessageSignature.Payload(failure)) },
            TestWorkerKeys.Signed(failure with { WorkerId = attacker.WorkerId }),
        };
        foreach (var forgery in forgeries)
        {
            await Harness.Bus.Publish(forgery);
            await _host.HandledAsync<AttemptFailed>(m => m.Signature == forgery.Signature && m.WorkerId == forgery.WorkerId);
        }

        Assert.Equal("assigned", await StatusAsync(job.JobId));
        Assert.Equal(0, await _host.OutboxCountAsync<JobFailed>(job.JobId.Value));
        await CompleteAsync(assign);
        var completed = await Harness.FirstPublishedAsync<JobCompleted>(m => m.JobId == job.JobId);
        Assert.Equal(assign.AttemptId, completed.AttemptId);
    }

    [Fact]
    public async Task A_worker_that_stops_beating_is_lost_and_its_job_moves()
    {
        // The worker beats until it has the job, then never again. (Beating until then, rather than not at all,
        // keeps a slow dispatch on a busy machine from finding it already silent and never giving it the job.)
        using var silence = new CancellationTokenSource();
        var lost = await LiveAsync(Online(gflops: 100), silence: silence.Token);
        var job = await FundedAsync();
        Assert.Equal(lost.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);
        await silence.CancelAsync();

        var healthy = await LiveAsync(Online(gflops: 1));

        Assert.Equal(healthy.WorkerId, (await AssignedAsync(job.JobId, nth: 2)).WorkerId);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Reason == "worker_lost"));
    }

    [Fact]
    public async Task Job_fails_with_the_history_of_its_attempts_once_they_run_out()
    {
        var a = await LiveAsync(Online());
        var b = await LiveAsync(Online());
        var job = await FundedAsync();

        foreach (var nth in new[] { 1, 2 })
        {
            var assign = await AssignedAsync(job.JobId, nth);
            await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptFailed
            {
                JobId = job.JobId,
                AttemptId = assign.AttemptId,
                WorkerId = assign.WorkerId,
                Reason = "worker_error",
                Detail = $"crash {nth}",
                OccurredAt = DateTimeOffset.UtcNow,
            }));
        }

        var failed = (await Harness.Published.SelectAsync<JobFailed>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal("attempts_exhausted", failed.Reason);
        Assert.Contains("crash 1", failed.Detail, StringComparison.Ordinal);
        Assert.Contains("crash 2", failed.Detail, StringComparison.Ordinal);
        // The second attempt went to the worker that had not failed it yet.
        Assert.Equal(new[] { a.WorkerId.Value, b.WorkerId.Value }.Order(),
            new[] { (await AssignedAsync(job.JobId, 1)).WorkerId.Value, (await AssignedAsync(job.JobId, 2)).WorkerId.Value }.Order());
    }

    [Fact]
    public async Task Cancelled_queued_job_is_refunded_and_never_assigned()
    {
        var job = await FundedAsync(region: "nowhere");
        await Eventually.UntilAsync(() => StatusAsync(job.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "job queued");

        await Harness.Bus.Publish(new JobCancelRequested { JobId = job.JobId, ClientAccountId = job.ClientAccountId, OccurredAt = DateTimeOffset.UtcNow });

        Assert.True(await Harness.Published.Any<JobCancelled>(m => m.Context.Message.JobId == job.JobId));
        await LiveAsync(Online(region: "nowhere"));
        await _host.Services.GetRequiredService<Dispatcher>().DispatchBatchAsync(CancellationToken.None);
        Assert.Equal("cancelled", await StatusAsync(job.JobId));
        Assert.Equal(0, await _host.OutboxCountAsync<AssignJob>(job.JobId.Value));
    }

    [Fact]
    public async Task Cancelling_a_running_job_stops_its_worker_and_frees_the_slot()
    {
        var worker = await LiveAsync(Online(slots: 1));
        var running = await FundedAsync();
        var assign = await AssignedAsync(running.JobId);
        var waiting = await FundedAsync();
        await Eventually.UntilAsync(() => StatusAsync(waiting.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "second job queued");

        await Harness.Bus.Publish(new JobCancelRequested { JobId = running.JobId, ClientAccountId = running.ClientAccountId, OccurredAt = DateTimeOffset.UtcNow });

        var cancel = (await Harness.Sent.SelectAsync<CancelAttempt>(m => m.Context.Message.JobId == running.JobId).First()).Context;
        Assert.Equal(assign.AttemptId, cancel.Message.AttemptId);
        Assert.EndsWith($"worker-{worker.WorkerId}-control", cancel.DestinationAddress!.AbsolutePath, StringComparison.Ordinal);
        Assert.Equal(worker.WorkerId, (await AssignedAsync(waiting.JobId)).WorkerId);
    }

    [Fact]
    public async Task Cancel_that_overtakes_the_submission_still_wins()
    {
        var jobId = JobId.New();
        var client = AccountId.New();
        await Harness.Bus.Publish(new JobCancelRequested { JobId = jobId, ClientAccountId = client, OccurredAt = DateTimeOffset.UtcNow });
        Assert.True(await Harness.Published.Any<JobCancelled>(m => m.Context.Message.JobId == jobId));
        await LiveAsync(Online());

        await Harness.Bus.Publish(Bundle.Of(new JobSubmitted
        {
            JobId = jobId,
            ClientAccountId = client,
            Spec = new JobSpec { Kernel = "matmul", Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) } },
            EstimatedGflop = 1,
            OccurredAt = DateTimeOffset.UtcNow,
        }));
        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = jobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        await _host.HandledAsync<JobFunded>(m => m.JobId == jobId);
        await _host.Services.GetRequiredService<Dispatcher>().DispatchBatchAsync(CancellationToken.None);

        Assert.Equal("cancelled", await StatusAsync(jobId));
        Assert.Equal(0, await _host.OutboxCountAsync<AssignJob>(jobId.Value));
    }

    [Fact]
    public async Task Job_that_requires_a_region_waits_for_a_worker_there()
    {
        await LiveAsync(Online(region: "us-east", gflops: 1000));
        var job = await FundedAsync(region: "eu-west");
        await Eventually.UntilAsync(() => StatusAsync(job.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "job queued");
        await _host.Services.GetRequiredService<Dispatcher>().DispatchBatchAsync(CancellationToken.None);
        Assert.Equal("queued", await StatusAsync(job.JobId));

        var eu = await LiveAsync(Online(region: "eu-west", gflops: 1));

        Assert.Equal(eu.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);
    }

    [Fact]
    public async Task Energy_policy_picks_the_worker_with_fewer_joules_per_job()
    {
        // A region of its own: workers other tests of this class registered may still be online.
        await LiveAsync(Online(region: "energy-test", gflops: 100, watts: 400)); // 4 J per GFLOP
        var frugal = await LiveAsync(Online(region: "energy-test", gflops: 20, watts: 50)); // 2.5 J per GFLOP

        var job = await FundedAsync(policy: "energy", region: "energy-test");

        Assert.Equal(frugal.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);
    }

    [Fact]
    public async Task A_burst_of_submissions_is_recorded_and_queued_in_a_few_transactions_each_queued_once()
    {
        // No worker serves the region: the jobs stay queued, and nothing but intake writes their rows.
        var jobs = Enumerable.Range(0, 40).Select(_ => new JobSubmitted
        {
            JobId = JobId.New(),
            ClientAccountId = AccountId.New(),
            Spec = new JobSpec
            {
                Kernel = "matmul",
                Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
                Requirements = new JobRequirements { Region = "nowhere" },
            },
            EstimatedGflop = 1,
            OccurredAt = DateTimeOffset.UtcNow,
        }).ToList();
        var ids = jobs.Select(j => j.JobId).ToHashSet();

        await Task.WhenAll(jobs.Select(j => Harness.Bus.Publish(Bundle.Of(j))));
        await Task.WhenAll(jobs.Select(j => Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = j.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }))));
        await _host.HandledAsync<JobSubmitted>(m => ids.Contains(m.JobId), count: jobs.Count);
        await _host.HandledAsync<JobFunded>(m => ids.Contains(m.JobId), count: jobs.Count);
        // Redelivered, both change nothing.
        await Task.WhenAll(jobs.Take(5).Select(j => Harness.Bus.Publish(Bundle.Of(j))));
        await Task.WhenAll(jobs.Take(5).Select(j => Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = j.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }))));
        await _host.HandledAsync<JobFunded>(m => ids.Contains(m.JobId), count: jobs.Count + 5);
        await _host.HandledAsync<JobSubmitted>(m => ids.Contains(m.JobId), count: jobs.Count + 5);

        await using var connection = await _host.Database.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(string Status, int Version, string Txid)>(
            "select status, status_version, xmin::text from jobs where id = any(@ids)", new { ids = ids.Select(i => i.Value).ToArray() })).ToList();
        var transactions = rows.Select(r => r.Txid).Distinct().Count();
        Assert.Equal(jobs.Count, rows.Count);
        Assert.All(rows, r => Assert.Equal(("queued", 1), (r.Status, r.Version)));
        Assert.True(transactions <= jobs.Count / 4, $"{jobs.Count} jobs were queued by {transactions} transactions");
        var queuedChanges = await connection.ExecuteScalarAsync<int>(
            "select count(*) from outbox where message_type = 'Platform.Contracts.Messages.JobStatusChanged' and body->>'status' = 'queued' and body->>'jobId' = any(@ids)",
            new { ids = ids.Select(i => i.Value).ToArray() });
        Assert.Equal(jobs.Count, queuedChanges);
    }

    [Fact]
    public async Task A_burst_of_results_from_one_node_is_accepted_in_a_few_transactions_each_job_once()
    {
        const int jobs = 32;
        var node = await LiveAsync(Online(region: "burst", slots: jobs));
        var funded = new List<JobSubmitted>();
        for (var i = 0; i < jobs; i++)
            funded.Add(await FundedAsync(region: "burst"));
        var assigned = new List<AssignJob>();
        foreach (var job in funded)
            assigned.Add(await AssignedAsync(job.JobId));
        Assert.All(assigned, a => Assert.Equal(node.WorkerId, a.WorkerId));

        // The node reports every start and every result at once, as one running many tiny jobs does.
        await Task.WhenAll(assigned.Select(a => Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptStarted
        {
            JobId = a.JobId,
            AttemptId = a.AttemptId,
            WorkerId = a.WorkerId,
            OccurredAt = DateTimeOffset.UtcNow,
        }))));
        await Task.WhenAll(assigned.Select(CompleteAsync));
        var ids = funded.Select(j => j.JobId).ToHashSet();
        await _host.HandledAsync<AttemptCompleted>(m => ids.Contains(m.JobId), count: jobs);
        // Redelivered, a result changes nothing.
        await Task.WhenAll(assigned.Take(5).Select(CompleteAsync));
        await _host.HandledAsync<AttemptCompleted>(m => ids.Contains(m.JobId), count: jobs + 5);

        await using var connection = await _host.Database.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(string Status, string Txid)>(
            "select status, xmin::text from jobs where id = any(@ids)", new { ids = ids.Select(i => i.Value).ToArray() })).ToList();
        var transactions = rows.Select(r => r.Txid).Distinct().Count();
        Assert.All(rows, r => Assert.Equal("completed", r.Status));
        Assert.True(transactions <= jobs / 4, $"{jobs} results were accepted by {transactions} transactions");
        Assert.Equal(jobs, await connection.ExecuteScalarAsync<int>(
            "select count(*) from attempts where job_id = any(@ids) and status = 'accepted'", new { ids = ids.Select(i => i.Value).ToArray() }));
        foreach (var job in funded)
            Assert.Equal(1, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_burst_from_one_client_does_not_hold_back_another_clients_job()
    {
        var worker = await LiveAsync(Online(slots: 1));
        var bursty = AccountId.New();
        var burst = new List<JobSubmitted>();
        for (var i = 0; i < 30; i++)
            burst.Add(await FundedAsync(bursty));
        var first = await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.WorkerId == worker.WorkerId).First();
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await _host.Database.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from jobs where status = 'queued'");
        }, n => n == 29, TimeSpan.FromSeconds(20), "the rest of the burst queued");

        var single = await FundedAsync();
        await Eventually.UntilAsync(() => StatusAsync(single.JobId), s => s == "queued", TimeSpan.FromSeconds(20), "the single job queued");
        await CompleteAsync(first.Context.Message);

        // The worker's very next attempt is the other client's job: it waited one job's run time, not 29.
        var next = await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.WorkerId == worker.WorkerId).Skip(1).First();
        Assert.Equal(single.JobId, next.Context.Message.JobId);
    }

    [Fact]
    public async Task A_result_that_overtakes_its_start_still_shows_the_job_running_before_it_completes()
    {
        await LiveAsync(Online());
        var job = await FundedAsync();
        var assign = await AssignedAsync(job.JobId);

        // The worker's AttemptStarted is still on its way (or lost) when its result arrives.
        await CompleteAsync(assign);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Status == "completed"));
        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptStarted { JobId = assign.JobId, AttemptId = assign.AttemptId, WorkerId = assign.WorkerId, OccurredAt = DateTimeOffset.UtcNow }));
        await _host.HandledAsync<AttemptStarted>(m => m.AttemptId == assign.AttemptId);

        // Read from the outbox, which holds every status the scheduler committed to publish (the harness's synchronous
        // Select would wait out its whole timeout).
        await using var connection = await _host.Database.OpenConnectionAsync();
        var history = (await connection.QueryAsync<string>(
            "select body->>'status' from outbox where message_type = @type and body->>'jobId' = @id order by (body->>'version')::bigint",
            new { type = typeof(JobStatusChanged).FullName, id = job.JobId.Value })).ToList();
        Assert.Equal(["assigned", "running", "completed"], history.SkipWhile(s => s != "assigned"));
        Assert.Equal("completed", await StatusAsync(job.JobId));
    }

    [Fact]
    public async Task A_jobs_status_changes_are_numbered_one_after_another_assignment_included()
    {
        await LiveAsync(Online());
        var job = await FundedAsync();
        var assign = await AssignedAsync(job.JobId);
        await Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptStarted { JobId = assign.JobId, AttemptId = assign.AttemptId, WorkerId = assign.WorkerId, OccurredAt = DateTimeOffset.UtcNow }));
        await _host.HandledAsync<AttemptStarted>(m => m.AttemptId == assign.AttemptId);
        await CompleteAsync(assign);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Status == "completed"));

        // The dispatch pass numbers its change from the version it read when it claimed the job, in the same round trip
        // as the update that takes that version: the numbers must still follow each other with the job's own.
        await using var connection = await _host.Database.OpenConnectionAsync();
        var history = (await connection.QueryAsync<(string Status, int Version)>(
            "select body->>'status', (body->>'version')::int from outbox where message_type = @type and body->>'jobId' = @id order by id",
            new { type = typeof(JobStatusChanged).FullName, id = job.JobId.Value })).ToList();
        Assert.Equal([("queued", 1), ("assigned", 2), ("running", 3), ("completed", 4)], history);
        Assert.Equal(4, await ScalarAsync<int>("select status_version from jobs where id = @id", new { id = job.JobId.Value }));
    }

    [Fact]
    public async Task A_result_no_other_must_match_is_accepted_and_starts_its_job_in_the_round_trip_that_completes_it()
    {
        await LiveAsync(Online());
        var job = await FundedAsync();
        var assign = await AssignedAsync(job.JobId);
        using var statements = new StatementCounter(_host.Database);
        await CompleteAsync(assign);
        await _host.HandledAsync<AttemptCompleted>(m => m.AttemptId == assign.AttemptId);
        Assert.True(await Harness.AnyPublished<JobCompleted>(m => m.JobId == job.JobId));

        // The statement that writes the attempt's result marks it accepted: no second update of the same row follows.
        await using var connection = await _host.Database.OpenConnectionAsync();
        Assert.Equal(("accepted", true), await connection.QuerySingleAsync<(string, bool)>(
            "select status, finished_at is not null from attempts where id = @id", new { id = assign.AttemptId.Value }));
        Assert.Contains(statements.Statements, s => s.Contains("update attempts set status = case", StringComparison.Ordinal));
        Assert.DoesNotContain(statements.Statements, s => s.Contains("update attempts set status = 'accepted'", StringComparison.Ordinal));
        // The result, the worker's trust, the completion and its messages reach the database in one round trip (one
        // batch, traced by Npgsql as one statement).
        Assert.Single(statements.Statements, s => s.Contains("update attempts set status = case", StringComparison.Ordinal)
            && s.Contains("insert into worker_trust", StringComparison.Ordinal) && s.Contains("update jobs set status = 'completed'", StringComparison.Ordinal)
            && s.Contains("insert into outbox", StringComparison.Ordinal));

        // No AttemptStarted came (a tiny job's never does): the job still shows running before completed, numbered in
        // order, by the completion's own update and outbox insert rather than a statement of its own.
        var history = (await connection.QueryAsync<(string Status, int Version)>(
            "select body->>'status', (body->>'version')::int from outbox where message_type = @type and body->>'jobId' = @id order by id",
            new { type = typeof(JobStatusChanged).FullName, id = job.JobId.Value })).ToList();
        Assert.Equal([("queued", 1), ("assigned", 2), ("running", 3), ("completed", 4)], history);
        Assert.Equal(4, await ScalarAsync<int>("select status_version from jobs where id = @id", new { id = job.JobId.Value }));
        Assert.DoesNotContain(statements.Statements, s => s.Contains("update jobs set status = 'running'", StringComparison.Ordinal));
    }
}
