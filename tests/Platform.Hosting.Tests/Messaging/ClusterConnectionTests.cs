using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>A bus given a cluster whose first node is down connects through the next one in its first attempt.</summary>
public sealed class ClusterConnectionTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-cluster");

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Fact]
    public async Task A_dead_first_node_costs_no_failed_connection_attempt()
    {
        // Nothing listens on the first node's port; the second is the test's broker.
        var live = new Uri(_env.RabbitMqUri);
        var dead = new UriBuilder(live) { Port = FreePort.Next() }.Uri;
        var log = new CapturedLog();
        var consumed = new TaskCompletionSource<JobFunded>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var host = await RunningHost.StartAsync(_env, services =>
        {
            services.AddLogging(l => l.AddProvider(log));
            services.AddSingleton(consumed);
            services.AddPlatformBus(RunningHost.Service, $"{dead},{live}", x => x.AddConsumer<ClusterProbeConsumer>().Endpoint(e => e.Name = "hostingtest-cluster-probe"));
        });
        var bus = host.Get<IBusControl>();
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, TimeSpan.FromSeconds(30), "the bus to be healthy");

        var sent = new JobFunded { JobId = Platform.Contracts.JobId.New(), Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow };
        await bus.Publish(sent);
        var received = await consumed.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(sent.JobId, received.JobId);
        // MassTransit's own cluster resolver offered the dead node alone in the first attempt: "Connection Failed", then
        // its transport retry's pause before the next node.
        Assert.DoesNotContain(log.Lines, line => line.Contains("Connection Failed", StringComparison.Ordinal) || line.Contains("unreachable", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(log.Lines, line => line.Contains("Bus started", StringComparison.Ordinal));
    }
}

internal sealed class ClusterProbeConsumer(TaskCompletionSource<JobFunded> consumed) : IConsumer<JobFunded>
{
    public Task Consume(ConsumeContext<JobFunded> context)
    {
        consumed.TrySetResult(context.Message);
        return Task.CompletedTask;
    }
}
