using System.Reflection;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;

namespace Platform.Testing;

/// <summary>
/// A service's consumers on the MassTransit test harness (in-memory bus) with the service's real database,
/// migrations and outbox: for testing one service's message handling without its HTTP side or a broker.
/// </summary>
public sealed class ConsumerTestHost : IAsyncDisposable
{
    private readonly IHost _host;

    private ConsumerTestHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;
    public ITestHarness Harness => _host.Services.GetRequiredService<ITestHarness>();
    public NpgsqlDataSource Database => _host.Services.GetRequiredService<NpgsqlDataSource>();

    public static async Task<ConsumerTestHost> StartAsync(
        TestEnvironment env, string service, Assembly serviceAssembly, Action<IBusRegistrationConfigurator> consumers, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddPlatformDatabase(service, env.PostgresConnectionStringFor(service), serviceAssembly);
        builder.Services.AddPlatformOutbox();
        services?.Invoke(builder.Services);
        builder.Services.AddMassTransitTestHarness(x =>
        {
            consumers(x);
            x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(30));
        });
        var host = builder.Build();
        await host.StartAsync();
        return new ConsumerTestHost(host);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
