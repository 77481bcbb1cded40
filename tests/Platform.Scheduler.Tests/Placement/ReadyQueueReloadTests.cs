using System.Text.Json;
using Dapper;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Scheduler.Jobs;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Placement;

/// <summary>
/// The dispatcher's ready queue holds what this scheduler queued; a job another scheduler instance queued (its
/// intake shares the database, not the memory) is placed once the queue reloads.
/// </summary>
public sealed class ReadyQueueReloadTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-ready-queue");
        _host = await SchedulerTestHost.StartAsync(_env, o =>
        {
            o.MinimumStake = 0;
            o.SpotChecks = false;
            SchedulerTestHost.WorkersNeverBeat(o);
            o.ReadyQueueReload = TimeSpan.FromMilliseconds(200);
        }, services => services.AddHttpClient<InputCheck>().ConfigurePrimaryHttpMessageHandler(_storage.Handler));
        _storage.Put("a"u8.ToArray());
        _storage.Put("b"u8.ToArray());
    }

    private readonly StandInStorage _storage = new();

    public async Task DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync();
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_job_another_scheduler_queued_is_placed_after_the_reload()
    {
        var worker = TestWorkerKeys.Registered(new WorkerOnline
        {
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.New(),
            Region = "local",
            Slots = 2,
            Kernels = ["vector-add"],
            Devices = [new DeviceInfo { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = 1024 }],
            GflopsPerKernel = new Dictionary<string, double> { ["vector-add"] = 10 },
            PowerWatts = 30,
            OccurredAt = DateTimeOffset.UtcNow,
        });
        await _host.AnnounceAsync(worker);
        var spec = new JobSpec { Kernel = "vector-add", Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) } };
        // A job through this scheduler's intake first: once it is assigned, a pass with a free slot has loaded the queue.
        var own = new JobSubmitted { JobId = JobId.New(), ClientAccountId = AccountId.New(), Spec = spec, EstimatedGflop = 1, OccurredAt = DateTimeOffset.UtcNow };
        await _host.Harness.Bus.Publish(Bundle.Of(own));
        await _host.Harness.Bus.Publish(Bundle.Of(new JobFunded { JobId = own.JobId, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));
        Assert.True(await _host.Harness.Sent.Any<AssignJob>(m => m.Context.Message.JobId == own.JobId));
        var job = JobId.New();

        // Queued as another instance's intake leaves it: in the database only, never through this scheduler's consumers.
        await using (var connection = await _host.Database.OpenConnectionAsync())
        {
            await connection.ExecuteAsync(
                """
                insert into jobs (id, client_account_id, kernel, spec, estimated_gflop, status, priority, region, device, min_memory_mb, input_bytes,
                                  results_needed, spot_check, funded, queued_at, status_version)
                values (@id, @client, 'vector-add', @spec::jsonb, 1, 'queued', 0, null, 'any', 0, 0, 1, false, true, now(), 1)
                """, new { id = job.Value, client = AccountId.New().Value, spec = JsonSerializer.Serialize(spec, PlatformJson.Options) });
        }

        var assigned = (await _host.Harness.Sent.SelectAsync<AssignJob>(m => m.Context.Message.JobId == job).First()).Context.Message;
        Assert.Equal(worker.WorkerId, assigned.WorkerId);
    }
}
