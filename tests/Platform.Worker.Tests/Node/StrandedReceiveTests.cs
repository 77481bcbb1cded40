using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Testing;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Tests.Node;

/// <summary>
/// A node whose receive endpoints were left on a lost broker connection takes in no work, so it must not tell the
/// scheduler it does: its heartbeats stop until its endpoints consume again. The node's presence runs in this process on
/// the real broker with the worker's bus, its beats caught where the scheduler's intake would bind. MassTransit's
/// stranding cannot be caused on purpose: the test reports a new connection as the bus's hook would (see
/// ReceiveWatchdogTests), and a real reconnection (the broker closes the connection) brings the endpoints back.
/// </summary>
public sealed class StrandedReceiveTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "platform-stranded-receive-" + Guid.NewGuid().ToString("n"));
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("stranded-receive");

    public async Task DisposeAsync()
    {
        await _env.DisposeAsync();
        await Teardown.DeleteFolderAsync(_dataDir);
    }

    [Fact]
    public async Task A_node_whose_receive_endpoints_are_stranded_withholds_its_heartbeats_until_they_consume_again()
    {
        var identity = NodeIdentity.LoadOrCreate(_dataDir);
        var beats = new BeatsCaught($"node-{identity.WorkerId}");
        using var host = await StartNodeAsync(identity, beats);
        try
        {
            var states = host.Services.GetRequiredService<ReceiveEndpointStates>();
            var watchdog = host.Services.GetRequiredService<ReceiveWatchdog>();
            var presence = host.Services.GetRequiredService<Presence>();
            await Eventually.UntilAsync(() => Task.FromResult(beats.Count), n => n >= 2, TimeSpan.FromSeconds(60), "two heartbeats");

            // The bus began a new connection and its endpoints, Ready on the old one, say nothing: the node stops beating.
            states.Connecting();
            await Eventually.UntilAsync(() => Task.FromResult(presence.WithheldBeats), n => n >= 1, TimeSpan.FromSeconds(30), "beats to be withheld");
            var withholding = DateTimeOffset.UtcNow;
            await Eventually.UntilAsync(() => Task.FromResult(presence.WithheldBeats), n => n >= 6, TimeSpan.FromSeconds(30), "five more beats withheld");
            // No beat was made once they were withheld (one made before may still be on its way: counts would race it).
            Assert.DoesNotContain(beats.All, beat => beat.OccurredAt >= withholding);
            Assert.True(watchdog.ReceivesNothing);

            // A real reconnection: the endpoints report the loss and are Ready on the new connection, and the beats resume.
            await _env.CloseBrokerConnectionsAsync();
            await Eventually.UntilAsync(() => Task.FromResult(beats.All.Count(beat => beat.OccurredAt >= withholding)), n => n >= 2, TimeSpan.FromSeconds(60),
                "heartbeats again");
            Assert.False(watchdog.ReceivesNothing);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    /// <summary>
    /// The worker's bus (its node login's shape, with the test's broker user) and its presence, beating every 200 ms, with
    /// an endpoint bound to the node's exchange as the scheduler's intake is.
    /// </summary>
    private async Task<IHost> StartNodeAsync(NodeIdentity identity, BeatsCaught beats)
    {
        var broker = RabbitMqAddress.Parse(_env.RabbitMqUri);
        var enrollment = new NodeEnrollment(AccountId.New(), new NodeBrokerLogin(broker.Host, broker.Port, broker.VirtualHost, broker.Username, broker.Password,
            beats.Exchange, $"worker-{identity.WorkerId}", $"worker-{identity.WorkerId}-control"));
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(identity);
        builder.Services.AddSingleton(enrollment);
        builder.Services.AddSingleton(beats);
        builder.Services.AddSingleton<NodeStatus>();
        builder.Services.AddSingleton<ComputeNode>();
        builder.Services.AddSingleton<NodeChannel>();
        builder.Services.Configure<WorkerOptions>(o =>
        {
            o.Backend = "simd";
            o.DataDirectory = _dataDir;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        });
        builder.Services.Configure<RabbitMqOptions>(o => o.ReceiveRecovery = TimeSpan.FromSeconds(1));
        builder.Services.AddPlatformBus("worker", enrollment.BusLogin, x => x.AddConsumer<BeatCatcher, BeatCatcherDefinition>());
        builder.Services.AddSingleton<Presence>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Presence>());
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}

internal sealed class BeatsCaught(string exchange)
{
    private readonly ConcurrentQueue<WorkerHeartbeat> _beats = new();

    public string Exchange { get; } = exchange;

    public int Count => _beats.Count;

    public IReadOnlyList<WorkerHeartbeat> All => [.. _beats];

    public void Add(WorkerHeartbeat beat) => _beats.Enqueue(beat);
}

internal sealed class BeatCatcher(BeatsCaught beats) : IConsumer<WorkerHeartbeat>
{
    public Task Consume(ConsumeContext<WorkerHeartbeat> context)
    {
        beats.Add(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>The node's exchange bound into the catcher's queue, as the scheduler binds it into its node intake.</summary>
internal sealed class BeatCatcherDefinition : ConsumerDefinition<BeatCatcher>
{
    private readonly string _exchange;

    public BeatCatcherDefinition(BeatsCaught beats)
    {
        _exchange = beats.Exchange;
        EndpointName = "test-node-beats";
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<BeatCatcher> consumerConfigurator,
        IRegistrationContext context)
    {
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit)
        {
            rabbit.ConfigureConsumeTopology = false;
            rabbit.Bind(_exchange, b => b.ExchangeType = "fanout");
        }
    }
}
