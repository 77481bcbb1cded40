using System.Collections.Concurrent;
using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Hosting.Messaging;
using Platform.Testing;
using Platform.Worker.Node;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Node;

/// <summary>
/// A real worker process on the real broker with nothing but what enrollment gives a node: the gateway's URL and
/// the node key in, a login limited to the node's own names out. It must announce itself, beat, run a job
/// and say goodbye through its own exchange, and never be refused by the broker.
/// </summary>
public sealed class NodeLoginTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "platform-node-login-" + Guid.NewGuid().ToString("n"));
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("nodelogin");

    public async Task DisposeAsync()
    {
        await _env.DisposeAsync();
        if (Directory.Exists(_dataDir))
            Directory.Delete(_dataDir, recursive: true);
    }

    [Fact]
    public async Task A_worker_with_only_its_node_login_announces_itself_runs_a_job_and_leaves_without_being_refused()
    {
        // The node's identity is made first, so the network's side can bind the node's exchange before it starts.
        var worker = NodeIdentity.LoadOrCreate(_dataDir).WorkerId;
        await using var gateway = await NodeGateway.StartAsync(_env);
        var received = new ConcurrentQueue<(object Message, string? UserId)>();
        var bus = await StartIntakeAsync(worker, received);
        try
        {
            // Every start reported, however short the job: this test follows each kind of message through the login.
            var process = await StartWorkerAsync(gateway, startReportDelay: "00:00:00");
            await using (process)
            {
                var online = await Eventually.UntilAsync(() => Task.FromResult(received.FirstOrDefault(r => r.Message is WorkerOnline)),
                    r => r.Message is not null, TimeSpan.FromSeconds(30), "WorkerOnline through the node's exchange");
                Assert.Equal(gateway.Operator, ((WorkerOnline)online.Message).OperatorAccountId);
                Assert.Equal($"node-{worker}", online.UserId);
                await Eventually.UntilAsync(() => Task.FromResult(received.Count(r => r.Message is WorkerHeartbeat)), n => n >= 2,
                    TimeSpan.FromSeconds(30), "heartbeats");

                var a = gateway.Put(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f], 3)));
                var b = gateway.Put(Npy.ToBytes(NpyArray.FromFloat32([10f, 20f, 30f], 3)));
                var job = await AssignVectorAddAsync(bus, worker, a, b);
                // AttemptStarted is sent first, but the intake consumes concurrently: wait for both.
                var completed = (AttemptCompleted)(await Eventually.UntilAsync(() => Task.FromResult(received.FirstOrDefault(r => r.Message is AttemptCompleted)),
                    r => r.Message is not null && received.Any(s => s.Message is AttemptStarted started && started.JobId == job), TimeSpan.FromSeconds(60),
                    $"the job's AttemptStarted and AttemptCompleted; worker log:\n{process.LogTail()}")).Message;
                Assert.Equal(job, completed.JobId);
                var result = Npy.Read(new MemoryStream(gateway.Blobs[Assert.Single(completed.Outputs).Value.Value]));
                Assert.Equal([11f, 22f, 33f], result.Float32!);
                Assert.Contains(received, r => r.Message is AttemptStarted s && s.JobId == job);
                Assert.All(received, r => Assert.Equal($"node-{worker}", r.UserId));

                await process.DisposeAsync();
                // The node published WorkerOffline before it exited; the intake may still be receiving it.
                var log = process.Log();
                await Eventually.UntilAsync(() => Task.FromResult(received.Any(r => r.Message is WorkerOffline)), TimeSpan.FromSeconds(30),
                    $"WorkerOffline through the node's exchange; worker log:\n{string.Join('\n', log.Split('\n').TakeLast(40))}");
                output.WriteLine($"worker log: {process.LogPath}");
                Assert.DoesNotContain("ACCESS_REFUSED", log, StringComparison.Ordinal);
                Assert.DoesNotContain("PRECONDITION_FAILED", log, StringComparison.Ordinal);
                // Readiness reports "not registered yet" as an error while the node calibrates; nothing else may fail.
                var errors = log.Split('\n').Where(line => (line.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal)
                        || line.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal))
                    && !line.Contains("\"Category\":\"Microsoft.Extensions.Diagnostics.HealthChecks", StringComparison.Ordinal)).ToList();
                Assert.True(errors.Count == 0, $"the worker logged errors:\n{string.Join('\n', errors)}");
                // The password stayed in memory.
                foreach (var password in gateway.Passwords)
                {
                    Assert.DoesNotContain(password, log, StringComparison.Ordinal);
                    Assert.DoesNotContain(Directory.EnumerateFiles(_dataDir, "*", SearchOption.AllDirectories),
                        f => new FileInfo(f).Length < 1 << 20 && File.ReadAllText(f).Contains(password, StringComparison.Ordinal));
                }
            }
        }
        finally
        {
            await bus.StopAsync();
        }
    }

    [Fact]
    public async Task A_job_done_before_the_start_report_delay_reports_only_its_result()
    {
        var worker = NodeIdentity.LoadOrCreate(_dataDir).WorkerId;
        await using var gateway = await NodeGateway.StartAsync(_env);
        var received = new ConcurrentQueue<(object Message, string? UserId)>();
        var bus = await StartIntakeAsync(worker, received);
        try
        {
            // A vector-add of three floats takes well under a millisecond; ten seconds leaves no doubt.
            await using var process = await StartWorkerAsync(gateway, startReportDelay: "00:00:10");
            await Eventually.UntilAsync(() => Task.FromResult(received.Any(r => r.Message is WorkerOnline)), TimeSpan.FromSeconds(30), "WorkerOnline");

            var a = gateway.Put(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f], 3)));
            var job = await AssignVectorAddAsync(bus, worker, a, a);
            await Eventually.UntilAsync(() => Task.FromResult(received.Any(r => r.Message is AttemptCompleted c && c.JobId == job)), TimeSpan.FromSeconds(60),
                $"the job's AttemptCompleted; worker log:\n{process.LogTail()}");
            // Whatever the node sent before its result has arrived once two heartbeats sent after it have.
            var beats = received.Count(r => r.Message is WorkerHeartbeat);
            await Eventually.UntilAsync(() => Task.FromResult(received.Count(r => r.Message is WorkerHeartbeat)), n => n >= beats + 2, TimeSpan.FromSeconds(30), "two more heartbeats");

            Assert.DoesNotContain(received, r => r.Message is AttemptStarted s && s.JobId == job);
        }
        finally
        {
            await bus.StopAsync();
        }
    }

    [Fact]
    public async Task A_worker_whose_node_key_is_refused_exits_and_says_why()
    {
        await using var gateway = await NodeGateway.StartAsync(_env);

        var failed = await Assert.ThrowsAsync<InvalidOperationException>(() => ServiceProcess.StartAsync("worker", _env, new Dictionary<string, string?>
        {
            ["Worker__NodeKey"] = "pk_not_a_node_key",
            ["Worker__GatewayUrl"] = gateway.BaseUrl.ToString(),
            ["Worker__DataDirectory"] = _dataDir,
        }));

        Assert.Contains("exited with code 1", failed.Message, StringComparison.Ordinal);
        Assert.Contains("refused the node key (Worker:NodeKey)", failed.Message, StringComparison.Ordinal);
    }

    /// <summary>The worker as an operator starts it, with nothing but the gateway's URL and its node key (and a quick heartbeat).</summary>
    private Task<ServiceProcess> StartWorkerAsync(NodeGateway gateway, string startReportDelay) =>
        ServiceProcess.StartAsync("worker", _env, new Dictionary<string, string?>
        {
            ["Worker__NodeKey"] = gateway.NodeKey,
            ["Worker__GatewayUrl"] = gateway.BaseUrl.ToString(),
            ["Worker__DataDirectory"] = _dataDir,
            ["Worker__KernelCacheDirectory"] = Platform.Testing.Kernels.KernelCache.Directory,
            ["Worker__HeartbeatInterval"] = "00:00:00.200",
            ["Worker__Backend"] = "simd",
            ["Worker__StartReportDelay"] = startReportDelay,
        });

    /// <summary>The scheduler's side: an assignment sent to the node's queue with the services' login.</summary>
    private static async Task<JobId> AssignVectorAddAsync(IBusControl bus, WorkerId worker, Cid a, Cid b)
    {
        var job = JobId.New();
        var send = await bus.GetSendEndpoint(new Uri($"queue:worker-{worker}"));
        await send.Send(new AssignJob
        {
            JobId = job,
            AttemptId = AttemptId.New(),
            WorkerId = worker,
            Spec = new JobSpec { Kernel = "vector-add", Inputs = new Dictionary<string, Cid> { ["a"] = a, ["b"] = b } },
            LeaseDeadline = DateTimeOffset.UtcNow.AddMinutes(5),
            OccurredAt = DateTimeOffset.UtcNow,
        });
        return job;
    }

    /// <summary>The network's side with the services' login: the node's exchange bound into an intake queue, as the scheduler binds it.</summary>
    private async Task<IBusControl> StartIntakeAsync(WorkerId worker, ConcurrentQueue<(object, string?)> received)
    {
        var broker = RabbitMqAddress.Parse(_env.RabbitMqUri);
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(broker.Host, broker.Port, broker.VirtualHost, h =>
            {
                h.Username(broker.Username);
                h.Password(broker.Password);
            });
            cfg.ReceiveEndpoint("test-node-intake", e =>
            {
                e.ConfigureConsumeTopology = false;
                e.Bind($"node-{worker}", x => x.ExchangeType = "fanout");
                Handle<WorkerOnline>(e, received);
                Handle<WorkerHeartbeat>(e, received);
                Handle<WorkerOffline>(e, received);
                Handle<AttemptStarted>(e, received);
                Handle<AttemptProgressed>(e, received);
                Handle<AttemptCompleted>(e, received);
                Handle<AttemptFailed>(e, received);
            });
        });
        await bus.StartAsync();
        return bus;
    }

    private static void Handle<T>(IRabbitMqReceiveEndpointConfigurator e, ConcurrentQueue<(object, string?)> received) where T : class =>
        e.Handler<T>(context =>
        {
            var userId = context.ReceiveContext.TryGetPayload<RabbitMqBasicConsumeContext>(out var rabbit) ? rabbit.Properties.UserId : null;
            received.Enqueue((context.Message, userId));
            return Task.CompletedTask;
        });
}
