using MassTransit;
using MassTransit.Middleware;
using MassTransit.Transports;
using Platform.Hosting.Messaging;
using Platform.Testing;
using RabbitMQ.Client.Exceptions;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>
/// A service's bus retries a send or an endpoint that failed on a lost broker connection on
/// <see cref="TransportRetry"/>'s schedule (a quarter of a second first), not MassTransit's (6 s first), which the
/// library sets with no option to change it; and still never retries a refused login.
/// </summary>
public sealed class TransportRetryTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-transport-retry");

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Fact]
    public async Task A_service_bus_retries_sends_and_endpoints_on_the_fast_schedule()
    {
        await using var host = await RunningHost.StartAsync(_env, services => services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri, null));
        var bus = host.Get<IBusControl>();
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, TimeSpan.FromSeconds(30), "the bus to be healthy");

        var configuration = host.Get<IBusInstance>().HostConfiguration;
        Assert.Same(TransportRetry.Policy, configuration.ReceiveTransportRetryPolicy);
        Assert.Same(TransportRetry.Policy, configuration.SendTransportRetryPolicy);
    }

    [Fact]
    public void A_lost_connection_is_retried_after_a_quarter_second_then_sooner_than_five_and_a_refused_login_never()
    {
        var delays = new List<TimeSpan>();
        var context = TransportRetry.Policy.CreatePolicyContext(new Probe());
        Assert.True(context.CanRetry(new ConnectionException("connection lost"), out var retry));
        delays.Add(retry.Delay!.Value);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(retry.CanRetry(new ConnectionException("connection lost"), out var next));
            retry = next;
            delays.Add(retry.Delay!.Value);
        }
        Assert.Equal([0.25, 0.5, 1, 2, 3, 5], delays.Select(d => d.TotalSeconds));

        Assert.False(TransportRetry.Policy.CreatePolicyContext(new Probe()).CanRetry(new AuthenticationFailureException("ACCESS_REFUSED"), out _));
        Assert.True(TransportRetry.Intervals.Sum(i => i.TotalMinutes) > 15, "a broker down for a quarter of an hour would stop being retried");
    }

    private sealed class Probe() : BasePipeContext(CancellationToken.None), PipeContext;
}
