using MassTransit;
using MassTransit.UsageTracking;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>
/// MassTransit 8.4+ reports usage telemetry to its authors' host five minutes after a bus starts, unless told not to.
/// Nothing of a deployment may call outside without its owner's consent: every service's bus (AddPlatformBus) has it
/// off. The report is sent by the usage tracker only while it is enabled, so a running bus whose tracker is disabled
/// sends nothing, now or at the five-minute mark.
/// </summary>
public sealed class UsageTelemetryTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-telemetry");

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Fact]
    public async Task A_running_service_bus_never_reports_usage_telemetry()
    {
        // The owner's explicit opt-in (MASSTRANSIT_USAGE_TELEMETRY=true) would override the default; the test run has none.
        Assert.True(string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MASSTRANSIT_USAGE_TELEMETRY")), "the test run sets MASSTRANSIT_USAGE_TELEMETRY");
        await using var host = await RunningHost.StartAsync(_env, services => services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri, null));
        var bus = host.Get<IBusControl>();
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, TimeSpan.FromSeconds(30), "the bus to be healthy");

        Assert.False(Assert.IsType<UsageTracker>(host.Get<IUsageTracker>()).Enabled, "MassTransit's usage tracker is enabled: the bus would post telemetry to MassTransit's host");
    }
}
