using System.Reflection;
using Dapper;
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
            // Messages come from the outbox relay and the dispatcher as well as from the test: the harness must not
            // decide the bus is idle while they are still on their way.
            x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(30), testInactivityTimeout: TimeSpan.FromSeconds(30));
        });
        var host = builder.Build();
        await host.StartAsync();
        return new ConsumerTestHost(host);
    }

    /// <summary>Waits until <paramref name="count"/> deliveries matching <paramref name="filter"/> were consumed; returns how many were seen before the harness timed out.</summary>
    public async Task<int> ConsumedAsync<T>(Func<T, bool> filter, int count) where T : class =>
        await AsyncEnumerable.CountAsync(AsyncEnumerable.Take(Harness.Consumed.SelectAsync<T>(m => filter(m.Context.Message)), count));

    /// <summary>
    /// How many messages of type <typeparamref name="T"/> about a job the service has committed to publish. The
    /// outbox is the record of every publish, so this counts exactly, without waiting for the bus to go quiet.
    /// </summary>
    public async Task<int> OutboxCountAsync<T>(string jobId)
    {
        await using var connection = await Database.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<int>(
            "select count(*) from outbox where message_type = @type and body->>'jobId' = @jobId", new { type = typeof(T).FullName, jobId });
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
