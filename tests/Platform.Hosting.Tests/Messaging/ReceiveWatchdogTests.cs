using System.Threading.Channels;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>
/// Receive endpoints that say nothing after the bus began a new broker connection are reported, once; a connection lost
/// the ordinary way (its endpoints report it and come back) reports nothing. The stranding itself (MassTransit
/// reconnecting without telling its endpoints) cannot be caused on purpose: the first test reports the new connection
/// as MassTransit's hook would, on a bus whose endpoints are in fact fine.
/// </summary>
public sealed class ReceiveWatchdogTests : IAsyncLifetime
{
    private const string Queue = "hostingtest-watchdog-probe";
    private static readonly TimeSpan Recovery = TimeSpan.FromSeconds(1);
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-watchdog");

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Fact]
    public async Task Endpoints_silent_since_a_reported_new_connection_are_reported_once_by_name()
    {
        var consumed = Channel.CreateUnbounded<JobFunded>();
        var log = new CapturedLog();
        await using var host = await StartAsync(consumed, log);
        var bus = host.Get<IBusControl>();
        var states = host.Get<ReceiveEndpointStates>();
        var watchdog = host.Get<ReceiveWatchdog>();
        await ConsumesAsync(bus, consumed);
        Assert.Empty(states.Stranded(TimeSpan.Zero, bus.Address));

        // What MassTransit did in the failover test: it began a new connection (the factory refresh, which the bus's
        // hook reports) and its receive endpoints, still Ready on the lost one, were never told.
        states.Connecting();
        Assert.Equal([Queue], states.Stranded(TimeSpan.Zero, bus.Address).Select(u => u.Segments[^1]));

        await Eventually.UntilAsync(() => Task.FromResult(watchdog.Reports), n => n > 0, TimeSpan.FromSeconds(30), "the watchdog to report");
        Assert.True(watchdog.ReceivesNothing);
        Assert.Contains(log.Lines, line => line.StartsWith("Error", StringComparison.Ordinal) && line.Contains(Queue, StringComparison.Ordinal)
            && line.Contains("left on the lost one", StringComparison.Ordinal));
        // Once per connection, however many checks follow.
        await ChecksAsync(watchdog, 3);
        Assert.Equal(1, watchdog.Reports);
    }

    [Fact]
    public async Task A_connection_closed_by_the_broker_is_recovered_by_MassTransit_and_reports_nothing()
    {
        var consumed = Channel.CreateUnbounded<JobFunded>();
        await using var host = await StartAsync(consumed, new CapturedLog());
        var bus = host.Get<IBusControl>();
        var states = host.Get<ReceiveEndpointStates>();
        await ConsumesAsync(bus, consumed);
        var firstConnection = states.Connections;

        await _env.CloseBrokerConnectionsAsync();

        // MassTransit noticed, connected again and its endpoints consume on the new connection.
        await Eventually.UntilAsync(() => Task.FromResult(states.Connections), n => n > firstConnection, TimeSpan.FromSeconds(30),
            "the bus to connect again");
        await ConsumesAsync(bus, consumed);
        // Checked past the watchdog's wait: the endpoints reported the loss and came back, so it reported nothing.
        var watchdog = host.Get<ReceiveWatchdog>();
        await ChecksAsync(watchdog, 6);
        Assert.Empty(states.Stranded(Recovery, bus.Address));
        Assert.Equal(0, watchdog.Reports);
        Assert.False(watchdog.ReceivesNothing);
    }

    private Task<RunningHost> StartAsync(Channel<JobFunded> consumed, CapturedLog log) => RunningHost.StartAsync(_env, services =>
    {
        services.AddLogging(l => l.AddProvider(log));
        services.AddSingleton(consumed);
        services.Configure<RabbitMqOptions>(o => o.ReceiveRecovery = Recovery);
        services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri, x => x.AddConsumer<WatchdogProbeConsumer>().Endpoint(e => e.Name = Queue));
    });

    /// <summary>A message published now is consumed (publishes are retried while the bus reconnects).</summary>
    private static async Task ConsumesAsync(IBusControl bus, Channel<JobFunded> consumed)
    {
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, TimeSpan.FromSeconds(30), "the bus to be healthy");
        var sent = new JobFunded { JobId = Platform.Contracts.JobId.New(), Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow };
        await bus.Publish(sent);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var received = await consumed.Reader.ReadAsync(deadline.Token);
            if (received.JobId == sent.JobId)
                return;
        }
    }

    /// <summary>The watchdog has looked <paramref name="more"/> more times (each a third of <see cref="Recovery"/> apart).</summary>
    private static async Task ChecksAsync(ReceiveWatchdog watchdog, int more)
    {
        var target = watchdog.Checks + more;
        await Eventually.UntilAsync(() => Task.FromResult(watchdog.Checks), n => n >= target, TimeSpan.FromSeconds(30), $"{more} more checks");
    }
}

internal sealed class WatchdogProbeConsumer(Channel<JobFunded> consumed) : IConsumer<JobFunded>
{
    public async Task Consume(ConsumeContext<JobFunded> context) => await consumed.Writer.WriteAsync(context.Message, context.CancellationToken);
}
