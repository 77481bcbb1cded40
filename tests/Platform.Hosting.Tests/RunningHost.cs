using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Platform.Hosting.Database;
using Platform.Testing;

namespace Platform.Hosting.Tests;

/// <summary>A plain generic host built the way a service builds its own, stopped and disposed with the test.</summary>
internal sealed class RunningHost(IHost host) : IAsyncDisposable
{
    /// <summary>The service name the stand-in service's migrations and queues are filed under.</summary>
    public const string Service = "hostingtest";

    private int _disposed;

    public IServiceProvider Services => host.Services;

    public T Get<T>() where T : notnull => host.Services.GetRequiredService<T>();

    /// <summary>A host with the platform database (this test assembly's migrations as the service's), not yet started.</summary>
    public static RunningHost Build(TestEnvironment env, Action<IServiceCollection>? configure = null, string service = Service)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPlatformDatabase(service, env.PostgresConnectionStringFor(service), typeof(RunningHost).Assembly);
        configure?.Invoke(builder.Services);
        return new RunningHost(builder.Build());
    }

    public static async Task<RunningHost> StartAsync(TestEnvironment env, Action<IServiceCollection>? configure = null)
    {
        var host = Build(env, configure);
        try
        {
            await host.StartAsync();
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    public Task StartAsync() => host.StartAsync();

    /// <summary>A connection to the service's database that does not go back to a pool the test would leave behind.</summary>
    public static async Task<NpgsqlConnection> OpenDatabaseAsync(TestEnvironment env, string service = Service)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(env.PostgresConnectionStringFor(service)) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            await host.StopAsync();
        }
        finally
        {
            host.Dispose();
        }
    }

    internal bool Migrated => Get<DatabaseState>().Migrated;
}
