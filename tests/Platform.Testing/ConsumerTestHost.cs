using System.Reflection;
using Dapper;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Xunit;

namespace Platform.Testing;

/// <summary>
/// A service's consumers on the MassTransit test harness (in-memory bus) with the service's real database,
/// migrations and outbox: for testing one service's message handling without its HTTP side or a broker.
/// Every consume is logged (<see cref="ConsumeLog"/>): wait for a delivery with <see cref="HandledAsync{T}(Func{T, bool}, int)"/>,
/// never with the harness's <c>Consumed.Any</c>, which is true when the consumer threw too; disposing the host
/// fails the test if any consumer faulted while it ran.
/// </summary>
public sealed class ConsumerTestHost : IAsyncDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private readonly IHost _host;

    private ConsumerTestHost(IHost host) => _host = host;

    /// <summary>Every consume so far and how it ended.</summary>
    public ConsumeLog Consumes => _host.Services.GetRequiredService<ConsumeLog>();

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
        builder.Services.AddSingleton<ConsumeLog>();
        builder.Services.AddMassTransitTestHarness(x =>
        {
            consumers(x);
            x.AddConsumeObserver(provider => provider.GetRequiredService<ConsumeLog>());
            // Messages come from the outbox relay and the dispatcher as well as from the test: the harness must not
            // decide the bus is idle while they are still on their way.
            x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(30), testInactivityTimeout: TimeSpan.FromSeconds(30));
        });
        var host = builder.Build();
        await host.StartAsync();
        return new ConsumerTestHost(host);
    }

    /// <summary>
    /// Waits until <paramref name="count"/> deliveries of messages <paramref name="filter"/> accepts were handled, and fails
    /// at once if the consumer threw on one of them (<see cref="ConsumeLog.HandledAsync{T}"/>).
    /// </summary>
    /// An event that travels in bundles (<see cref="BundledAttribute"/>) counts once per item.
    public Task<IReadOnlyList<T>> HandledAsync<T>(Func<T, bool> filter, int count = 1) where T : class =>
        BundledAttribute.IsOn(typeof(T)) ? Consumes.HandledItemsAsync(filter, count) : Consumes.HandledAsync<T>(c => filter(c.Message), count);

    /// <summary>Waits until the delivery with this message id was handled; fails if its consumer threw.</summary>
    public async Task HandledAsync<T>(Guid messageId) where T : class =>
        await Consumes.HandledAsync<T>(c => c.MessageId == messageId);

    /// <summary>Publishes <paramref name="message"/> and waits until it was handled (<see cref="HandledAsync{T}(Guid)"/>).</summary>
    /// An event that travels in bundles is published as a bundle of one, as the outbox relay would send it alone.
    public async Task PublishHandledAsync<T>(T message) where T : class
    {
        var id = NewId.NextGuid();
        if (BundledAttribute.IsOn(typeof(T)))
        {
            await Harness.Bus.Publish(Bundle.Of(message), ctx => ctx.MessageId = id);
            await HandledAsync<Bundle<T>>(id);
            return;
        }
        await Harness.Bus.Publish(message, ctx => ctx.MessageId = id);
        await HandledAsync<T>(id);
    }

    /// <summary>Fails unless no consumer has thrown so far.</summary>
    public void AssertNoConsumerFaulted() => Consumes.AssertNoConsumerFaulted();

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

    /// <summary>Stops the service, then fails if any consumer threw while the test ran (not while stopping).</summary>
    public async ValueTask DisposeAsync()
    {
        var faults = Consumes.Faults;
        // Bounded: a consumer or background service that ignores its stop token would otherwise hang the whole test run.
        using var stopping = new CancellationTokenSource(StopTimeout);
        try
        {
            await _host.StopAsync(stopping.Token).WaitAsync(2 * StopTimeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the host did not stop within {2 * StopTimeout.TotalSeconds:0} s: a consumer or background service ignores its stop token");
        }
        _host.Dispose();
        ConsumeLog.AssertNone(faults);
    }
}
