using System.Net;
using System.Security.Cryptography;
using Dapper;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// Signed results, replicas from different operators, tie-breaks, penalties, spot checks and stakes: the
/// scheduler's consumers and dispatcher on a real Postgres. Outputs whose CIDs differ are read from a
/// stand-in for the storage service that serves the test's tensors.
/// </summary>
public sealed class VerificationTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;
    private readonly Dictionary<Cid, byte[]> _blobs = [];
    private ITestHarness Harness => _host.Harness;

    public async Task InitializeAsync() =>
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-verification");

    private async Task StartAsync(double spotCheckFraction = 0)
    {
        _host = await ConsumerTestHost.StartAsync(_env, "scheduler", typeof(Program).Assembly, bus =>
        {
            bus.AddJobs();
            bus.AddWorkers();
        }, services =>
        {
            services.AddPlacement();
            services.AddVerification();
            services.AddHttpClient<ResultComparer>().ConfigurePrimaryHttpMessageHandler(() => new BlobsHandler(_blobs));
            services.Configure<SchedulerOptions>(o =>
            {
                o.MinimumStake = 10;
                o.SpotCheckFraction = spotCheckFraction;
                o.DispatchInterval = TimeSpan.FromMilliseconds(200);
            });
        });
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
            await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    /// <summary>Serves the test's tensors as storage would, and 404 for anything else.</summary>
    private sealed class BlobsHandler(Dictionary<Cid, byte[]> blobs) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var cid = request.RequestUri!.Segments[^1];
            return Task.FromResult(Cid.TryParse(cid, out var parsed) && blobs.TryGetValue(parsed, out var bytes)
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) }
                : new HttpResponseMessage(HttpStatusCode.NotFound));
        }
    }

    private Dictionary<string, Cid> Output(params float[] c)
    {
        var bytes = Npy.ToBytes(NpyArray.FromFloat32(c, c.Length));
        var cid = Cid.Compute(bytes);
        _blobs[cid] = bytes;
        return new Dictionary<string, Cid> { ["c"] = cid };
    }

    /// <summary>An online worker whose operator has staked <paramref name="stake"/>; faster workers are placed first.</summary>
    private async Task<WorkerOnline> WorkerAsync(double gflops, AccountId? @operator = null, decimal stake = 10)
    {
        var worker = TestWorkerKeys.Registered(new WorkerOnline
        {
            WorkerId = WorkerId.New(),
            OperatorAccountId = @operator ?? AccountId.New(),
            Region = "local",
            Slots = 1,
            Kernels = ["vector-add"],
            Devices = [new DeviceInfo { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = 1024 }],
            GflopsPerKernel = new Dictionary<string, double> { ["vector-add"] = gflops },
            PowerWatts = 30,
            OccurredAt = DateTimeOffset.UtcNow,
        });
        await StakeAsync(worker.OperatorAccountId, stake, version: 1);
        await Harness.Bus.Publish(worker);
        Assert.True(await Harness.Consumed.Any<WorkerOnline>(m => m.Context.Message.WorkerId == worker.WorkerId));
        return worker;
    }

    private async Task StakeAsync(AccountId @operator, decimal staked, long version)
    {
        await Harness.Bus.Publish(new StakeChanged { OperatorAccountId = @operator, Staked = staked, Version = version, OccurredAt = DateTimeOffset.UtcNow });
        Assert.True(await Harness.Consumed.Any<StakeChanged>(m => m.Context.Message.OperatorAccountId == @operator && m.Context.Message.Version == version));
    }

    private async Task<JobSubmitted> SubmitAsync(int replicas = 1)
    {
        var job = new JobSubmitted
        {
            JobId = JobId.New(),
            ClientAccountId = AccountId.New(),
            Spec = new JobSpec
            {
                Kernel = "vector-add",
                Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
                Replicas = replicas,
            },
            EstimatedGflop = 1,
            OccurredAt = DateTimeOffset.UtcNow,
        };
        await Harness.Bus.Publish(job);
        await Harness.Bus.Publish(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow });
        return job;
    }

    private async Task<AssignJob> AssignedAsync(JobId job, int nth = 1) =>
        (await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == job).Skip(nth - 1).First()).Context.Message;

    private static AttemptCompleted Result(AssignJob assign, Dictionary<string, Cid> outputs) => new()
    {
        JobId = assign.JobId,
        AttemptId = assign.AttemptId,
        WorkerId = assign.WorkerId,
        Outputs = outputs,
        Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu", Joules = 2 },
        OccurredAt = DateTimeOffset.UtcNow,
    };

    private Task ReportAsync(AssignJob assign, Dictionary<string, Cid> outputs) => Harness.Bus.Publish(TestWorkerKeys.Signed(Result(assign, outputs)));

    private async Task<JobCompleted> CompletedAsync(JobId job) =>
        (await Harness.Published.SelectAsync<JobCompleted>(m => m.Context.Message.JobId == job).First()).Context.Message;

    private async Task<T> QueryAsync<T>(string sql, object parameters)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<T>(sql, parameters) ?? throw new InvalidOperationException($"no row for {sql}");
    }

    [Fact]
    public async Task A_result_signed_by_another_key_is_rejected_and_the_job_runs_elsewhere()
    {
        await StartAsync();
        var first = await WorkerAsync(gflops: 100);
        var second = await WorkerAsync(gflops: 1);
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(first.WorkerId, assign.WorkerId);

        using var impostor = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var forged = Result(assign, Output(1, 2, 3));
        await Harness.Bus.Publish(forged with { Signature = ResultSignature.Sign(impostor, forged.JobId, forged.AttemptId, forged.Outputs) });

        var retry = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(second.WorkerId, retry.WorkerId);
        Assert.Equal("signature_invalid", await QueryAsync<string>("select reason from attempts where id = @id", new { id = assign.AttemptId.Value }));
        Assert.Equal(0, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));

        await ReportAsync(retry, Output(1, 2, 3));
        var done = await CompletedAsync(job.JobId);
        Assert.Equal(retry.AttemptId, done.AttemptId);
        Assert.Equal(1, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
    }

    [Fact]
    public async Task An_unsigned_result_is_rejected()
    {
        await StartAsync();
        await WorkerAsync(gflops: 100);
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);

        await Harness.Bus.Publish(Result(assign, Output(1, 2, 3)));

        Assert.Equal("failed", await Eventually.UntilAsync(
            () => QueryAsync<string>("select status from attempts where id = @id", new { id = assign.AttemptId.Value }),
            s => s == "failed", TimeSpan.FromSeconds(10), "the unsigned attempt failing"));
        Assert.Equal("signature_invalid", await QueryAsync<string>("select reason from attempts where id = @id", new { id = assign.AttemptId.Value }));
        Assert.Equal(0, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
    }

    [Fact]
    public async Task A_worker_id_cannot_be_taken_over_with_another_key()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var takeover = TestWorkerKeys.SignedWith(other, worker with { Region = "elsewhere", OccurredAt = DateTimeOffset.UtcNow });

        await Harness.Bus.Publish(takeover);
        Assert.True(await Harness.Consumed.Any<WorkerOnline>(m => m.Context.Message.PublicKey == takeover.PublicKey));

        Assert.Equal(worker.PublicKey, await QueryAsync<string>("select public_key from workers where id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal("local", await QueryAsync<string>("select region from workers where id = @id", new { id = worker.WorkerId.Value }));
    }

    [Fact]
    public async Task A_worker_registers_only_a_key_it_proves_it_holds()
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
            OccurredAt = DateTimeOffset.UtcNow,
        });
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // Someone announces another's public key (unsigned, or signed with their own key), to have results it
        // cannot sign rejected under that id, or to squat the id first.
        var unsigned = signed with { Signature = null };
        var notTheirs = signed with { Signature = WorkerMessageSignature.Sign(other, WorkerMessageSignature.Payload(signed)) };

        foreach (var announcement in new[] { unsigned, notTheirs })
        {
            await Harness.Bus.Publish(announcement);
            Assert.True(await Harness.Consumed.Any<WorkerOnline>(m => m.Context.Message.WorkerId == announcement.WorkerId && m.Context.Message.Signature == announcement.Signature));
        }
        Assert.Equal(0, await QueryAsync<long>("select count(*) from workers where id = @id", new { id = signed.WorkerId.Value }));

        await Harness.Bus.Publish(signed);
        Assert.Equal(1, await Eventually.UntilAsync(
            () => QueryAsync<long>("select count(*) from workers where id = @id", new { id = signed.WorkerId.Value }),
            n => n == 1, TimeSpan.FromSeconds(10), "the signed announcement registering the worker"));
    }

    [Fact]
    public async Task Replicas_run_on_different_operators_and_a_disagreement_is_broken_and_penalized()
    {
        await StartAsync();
        var cheatersOperator = AccountId.New();
        var cheater = await WorkerAsync(gflops: 100, cheatersOperator);
        await WorkerAsync(gflops: 90, cheatersOperator); // the same operator's second worker may not verify the first
        var honest = await WorkerAsync(gflops: 50);
        var tieBreaker = await WorkerAsync(gflops: 10);
        var job = await SubmitAsync(replicas: 2);

        var first = await AssignedAsync(job.JobId);
        Assert.Equal(cheater.WorkerId, first.WorkerId);
        await ReportAsync(first, Output(2, 3, 4));

        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(honest.WorkerId, second.WorkerId);
        Assert.True(await Harness.Published.Any<JobStatusChanged>(m => m.Context.Message.JobId == job.JobId && m.Context.Message.Status == "verifying"));
        await ReportAsync(second, Output(1, 2, 3));

        // The tie-breaker adds in another order: a different CID, equal within rounding.
        var third = await AssignedAsync(job.JobId, nth: 3);
        Assert.Equal(tieBreaker.WorkerId, third.WorkerId);
        await ReportAsync(third, Output(1, 2.0000002f, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(second.AttemptId, done.AttemptId);
        Assert.Equal([second.AttemptId, third.AttemptId], done.Accepted!.Select(a => a.AttemptId));
        Assert.All(done.Accepted!, a => Assert.False(a.SpotCheck));
        Assert.Equal(Output(1, 2, 3), done.Outputs);

        var penalty = (await Harness.Published.SelectAsync<WorkerPenalized>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal(first.AttemptId, penalty.AttemptId);
        Assert.Equal(cheatersOperator, penalty.OperatorAccountId);
        Assert.Equal(1, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
        Assert.Equal("rejected", await QueryAsync<string>("select status from attempts where id = @id", new { id = first.AttemptId.Value }));
        Assert.Equal(0.5, await QueryAsync<double>("select reputation from workers where id = @id", new { id = cheater.WorkerId.Value }));
    }

    [Fact]
    public async Task Agreeing_replicas_complete_the_job_without_penalties()
    {
        await StartAsync();
        await WorkerAsync(gflops: 100);
        await WorkerAsync(gflops: 50);
        var job = await SubmitAsync(replicas: 2);

        await ReportAsync(await AssignedAsync(job.JobId), Output(1, 2, 3));
        await ReportAsync(await AssignedAsync(job.JobId, nth: 2), Output(1, 2, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(2, done.Accepted!.Count);
        Assert.Equal(0, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
    }

    [Fact]
    public async Task A_spot_checked_job_is_verified_by_another_operator_at_the_networks_expense()
    {
        await StartAsync(spotCheckFraction: 1);
        var first = await WorkerAsync(gflops: 100);
        var checker = await WorkerAsync(gflops: 50);
        var job = await SubmitAsync(replicas: 1);

        await ReportAsync(await AssignedAsync(job.JobId), Output(1, 2, 3));
        var check = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(checker.WorkerId, check.WorkerId);
        await ReportAsync(check, Output(1, 2, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(first.WorkerId, done.WorkerId);
        Assert.Equal([false, true], done.Accepted!.Select(a => a.SpotCheck));
    }

    [Fact]
    public async Task Workers_get_work_only_once_their_operator_has_staked_the_minimum()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10, stake: 5);
        var job = await SubmitAsync();
        await Eventually.UntilAsync(() => QueryAsync<string>("select status from jobs where id = @id", new { id = job.JobId.Value }),
            s => s == "queued", TimeSpan.FromSeconds(10), "the job queued");

        var dispatcher = _host.Services.GetRequiredService<Dispatcher>();
        Assert.Equal(0, await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.Equal("queued", await QueryAsync<string>("select status from jobs where id = @id", new { id = job.JobId.Value }));

        await StakeAsync(worker.OperatorAccountId, 10, version: 3);
        Assert.Equal(worker.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);

        // An older stake message arriving late changes nothing.
        await StakeAsync(worker.OperatorAccountId, 0, version: 2);
        Assert.Equal(10m, await QueryAsync<decimal>("select staked from operator_stakes where operator_account_id = @id", new { id = worker.OperatorAccountId.Value }));
    }
}
