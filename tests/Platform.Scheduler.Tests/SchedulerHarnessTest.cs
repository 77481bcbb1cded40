using Dapper;
using MassTransit.Testing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests;

/// <summary>
/// The scheduler's consumers and dispatcher on the MassTransit harness with a real Postgres, and the moves of
/// a scenario: workers coming online with a stake, jobs submitted and funded, signed results reported. Outputs
/// whose CIDs differ are read from a stand-in for the storage service that serves the test's tensors.
/// </summary>
public abstract class SchedulerHarnessTest(string environment) : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private protected ConsumerTestHost _host = null!;
    private protected readonly StandInStorage _storage = new();
    protected ITestHarness Harness => _host.Harness;

    /// <summary>How many times the scheduler read a blob from (the stand-in for) storage.</summary>
    protected int StorageReads => _storage.Reads;

    public async Task InitializeAsync() =>
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync(environment);

    /// <summary>Starts the scheduler: stake minimum 10, no spot checks unless <paramref name="configure"/> turns them on.</summary>
    protected async Task StartAsync(Action<SchedulerOptions>? configure = null)
    {
        _host = await SchedulerTestHost.StartAsync(_env, o =>
        {
            o.MinimumStake = 10;
            o.SpotChecks = false;
            o.DispatchInterval = TimeSpan.FromMilliseconds(200);
            SchedulerTestHost.WorkersNeverBeat(o); // the scenarios' workers announce themselves once
            configure?.Invoke(o);
        }, services =>
        {
            services.AddHttpClient<ResultComparer>().ConfigurePrimaryHttpMessageHandler(_storage.Handler);
            services.AddHttpClient<InputCheck>().ConfigurePrimaryHttpMessageHandler(_storage.Handler);
        });
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (_host is not null)
                await _host.DisposeAsync(); // fails the test if a consumer threw
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }

    protected Dictionary<string, Cid> Output(params float[] c)
    {
        return new Dictionary<string, Cid> { ["c"] = _storage.Put(Npy.ToBytes(NpyArray.FromFloat32(c, c.Length))) };
    }

    /// <summary>An online vector-add worker whose operator has staked <paramref name="stake"/>; faster workers are placed first.</summary>
    protected async Task<WorkerOnline> WorkerAsync(double gflops, AccountId? @operator = null, decimal stake = 10, Func<WorkerOnline, WorkerOnline>? shape = null)
    {
        var announced = new WorkerOnline
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
        };
        var worker = TestWorkerKeys.Registered(shape?.Invoke(announced) ?? announced);
        await StakeAsync(worker.OperatorAccountId, stake, version: 1);
        await _host.AnnounceAsync(worker);
        await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == worker.WorkerId);
        return worker;
    }

    protected async Task StakeAsync(AccountId @operator, decimal staked, long version)
    {
        await Harness.Bus.Publish(new StakeChanged { OperatorAccountId = @operator, Staked = staked, Version = version, OccurredAt = DateTimeOffset.UtcNow });
        await _host.HandledAsync<StakeChanged>(m => m.OperatorAccountId == @operator && m.Version == version);
    }

    /// <summary>Valid vector-add inputs a and b of four elements, pinned in the stand-in storage.</summary>
    protected Dictionary<string, Cid> VectorInputs() => new()
    {
        ["a"] = _storage.Put(Npy.ToBytes(NpyArray.FromFloat32([1, 2, 3, 4], 4))),
        ["b"] = _storage.Put(Npy.ToBytes(NpyArray.FromFloat32([5, 6, 7, 8], 4))),
    };

    /// <param name="inputs">The job's inputs; by default two CIDs storage does not hold (the scheduler reads inputs only to check a claim).</param>
    protected async Task<JobSubmitted> SubmitAsync(int replicas = 1, JobId? id = null, JobRequirements? requirements = null, Dictionary<string, Cid>? inputs = null,
        double gflop = 1)
    {
        var job = new JobSubmitted
        {
            JobId = id ?? JobId.New(),
            ClientAccountId = AccountId.New(),
            Spec = new JobSpec
            {
                Kernel = "vector-add",
                Inputs = inputs ?? new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
                Replicas = replicas,
                Requirements = requirements ?? new JobRequirements(),
            },
            EstimatedGflop = gflop,
            OccurredAt = DateTimeOffset.UtcNow,
        };
        await Harness.Bus.Publish(Bundle.Of(job));
        await Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = job.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        return job;
    }

    protected async Task<AssignJob> AssignedAsync(JobId job, int nth = 1) =>
        (await Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == job).Skip(nth - 1).First()).Context.Message;

    protected static AttemptCompleted Result(AssignJob assign, Dictionary<string, Cid> outputs) => new()
    {
        JobId = assign.JobId,
        AttemptId = assign.AttemptId,
        WorkerId = assign.WorkerId,
        Outputs = outputs,
        Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu", Joules = 2 },
        OccurredAt = DateTimeOffset.UtcNow,
    };

    protected Task ReportAsync(AssignJob assign, Dictionary<string, Cid> outputs) => Harness.Bus.Publish(TestWorkerKeys.Signed(Result(assign, outputs)));

    protected async Task<JobCompleted> CompletedAsync(JobId job) =>
        await Harness.FirstPublishedAsync<JobCompleted>(m => m.JobId == job);

    protected async Task<T> QueryAsync<T>(string sql, object parameters)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<T>(sql, parameters) ?? throw new InvalidOperationException($"no row for {sql}");
    }

    /// <summary>GET /v1/workers/{id}/placement, as the scheduler's route answers it.</summary>
    protected async Task<WorkerPlacementView> PlacementAsync(WorkerId worker)
    {
        var result = await WorkerPlacement.Get(worker.Value, _host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(),
            TimeProvider.System, CancellationToken.None);
        return Assert.IsType<Ok<WorkerPlacementView>>(result.Result).Value!;
    }

    protected async Task ExecuteAsync(string sql, object parameters)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync(sql, parameters);
    }
}
