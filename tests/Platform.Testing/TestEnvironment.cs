using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace Platform.Testing;

/// <summary>
/// One test class's slice of the shared servers: its own RabbitMQ vhost and its own database names
/// (<c>&lt;Name&gt;_&lt;service&gt;</c>). Disposing deletes both and stops any service still running in it.
/// </summary>
public sealed partial class TestEnvironment : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, int> instances = new();
    private readonly ConcurrentDictionary<ServiceProcess, byte> services = new();
    private int disposed;
    private bool vhostDeleteUnanswered;

    private static readonly TimeSpan VirtualHostDeleteDeadline = TimeSpan.FromMinutes(3);

    internal TestEnvironment(PlatformInfrastructure infrastructure, string name)
    {
        Infrastructure = infrastructure;
        // Lower-case letters, digits and '_' need no quoting as a vhost or database name; the random part
        // keeps parallel and repeated runs apart; 63 bytes is Postgres's limit for names.
        var readable = NotNameChars().Replace(name.ToLowerInvariant(), "_");
        Name = $"t_{readable[..Math.Min(readable.Length, 24)]}_{Guid.NewGuid().ToString("N")[..8]}";

        RabbitMqUri = WithVirtualHost(infrastructure.RabbitMqUri);
        DirectRabbitMqUri = infrastructure.DirectRabbitMqUri is { } direct ? WithVirtualHost(direct) : null;
        LogDirectory = Path.Combine(infrastructure.RepoRoot, ".platform", "test-logs", Name);
    }

    public PlatformInfrastructure Infrastructure { get; }

    /// <summary>Unique name: the vhost, the database-name prefix and the log folder's name.</summary>
    public string Name { get; }

    /// <summary>amqp URI of this environment's vhost.</summary>
    public string RabbitMqUri { get; }

    /// <summary>The partitionable cluster's URIs reaching node 1 directly (<see cref="PlatformInfrastructure.DirectRabbitMqUri"/>), with this vhost.</summary>
    public string? DirectRabbitMqUri { get; }

    // Every node of a cluster, each with this environment's vhost.
    private string WithVirtualHost(string uris) => string.Join(',', uris.Split(',').Select(node =>
    {
        var broker = new Uri(node);
        var credentials = broker.UserInfo.Length > 0 ? broker.UserInfo + "@" : "";
        return $"{broker.Scheme}://{credentials}{broker.Authority}/{Uri.EscapeDataString(Name)}{broker.Query}";
    }));

    /// <summary>
    /// Platform:GatewaySecret of the services started here (gateway, scheduler, rewards, storage; never workers),
    /// random per environment; <see cref="GatewaySigner"/> signs with it.
    /// </summary>
    public string GatewaySecret { get; } = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>Where <see cref="ServiceProcess"/> writes the services' logs; kept after the test for reading.</summary>
    public string LogDirectory { get; }

    /// <summary>
    /// Connection string for one service's database, <c>&lt;Name&gt;_&lt;service&gt;</c>. The services create
    /// their database when it is missing.
    /// </summary>
    public string PostgresConnectionStringFor(string service)
    {
        if (!NameOnly().IsMatch(service))
        {
            throw new ArgumentException("Use lower-case letters, digits and '_' only.", nameof(service));
        }

        return new NpgsqlConnectionStringBuilder(Infrastructure.PostgresConnectionString) { Database = $"{Name}_{service}" }
            .ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        try
        {
            // A service still connected would recreate queues in the vhost or hold its database open.
            await Task.WhenAll(services.Keys.Select(service => service.DisposeAsync().AsTask()));
        }
        finally
        {
            // Both deletes are tried again until a deadline (Teardown): on a busy broker a vhost with a service's queues
            // can take longer to delete than the management client waits (the delete goes on, and the next try finds the
            // vhost gone; after a partition a cluster's took more than the usual minute), and a database can be briefly
            // held by a session a killed service left.
            try
            {
                await Teardown.RetryAsync(DeleteVirtualHostAsync, Teardown.Gone, $"deleting vhost {Name}", VirtualHostDeleteDeadline);
            }
            finally
            {
                await Teardown.RetryAsync(DropDatabasesAsync, dropped => dropped, $"dropping the databases of {Name}");
            }
        }
    }

    private async Task<HttpStatusCode> DeleteVirtualHostAsync()
    {
        // A delete the management API did not answer in time may still be under way (a cluster just healed from a
        // partition took over a minute): the next try asks whether the vhost is gone before deleting it again.
        if (vhostDeleteUnanswered)
        {
            using var found = await Infrastructure.RabbitMqManagement.GetAsync(VirtualHostPath());
            if (found.StatusCode == HttpStatusCode.NotFound)
                return found.StatusCode;
        }

        vhostDeleteUnanswered = true;
        using var response = await Infrastructure.RabbitMqManagement.DeleteAsync(VirtualHostPath());
        vhostDeleteUnanswered = false;
        return response.StatusCode;
    }

    private async Task<bool> DropDatabasesAsync()
    {
        var admin = new NpgsqlConnectionStringBuilder(Infrastructure.PostgresConnectionString) { Database = "postgres" };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync();
        var databases = new List<string>();
        await using (var query = new NpgsqlCommand("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", connection))
        {
            query.Parameters.Add(new NpgsqlParameter { Value = Name + "_" });
            await using var reader = await query.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                databases.Add(reader.GetString(0));
            }
        }

        foreach (var database in databases)
        {
            // FORCE ends the sessions of services that were killed rather than stopped.
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\" WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }

        return true;
    }

    internal async Task CreateVirtualHostAsync()
    {
        using (var vhost = await Infrastructure.RabbitMqManagement.PutAsync(VirtualHostPath(), Json("{}")))
        {
            vhost.EnsureSuccessStatusCode();
        }

        var permissions = $"api/permissions/{Uri.EscapeDataString(Name)}/{Uri.EscapeDataString(Infrastructure.RabbitMqUser)}";
        using var granted = await Infrastructure.RabbitMqManagement.PutAsync(
            permissions, Json("""{"configure":".*","write":".*","read":".*"}"""));
        granted.EnsureSuccessStatusCode();
    }

    /// <summary>The broker closes every client connection to this environment's vhost (management API), as a lost link would.</summary>
    public async Task CloseBrokerConnectionsAsync()
    {
        var management = Infrastructure.RabbitMqManagement;
        // The management API lists a connection once its statistics are first collected (every few seconds).
        var names = await Eventually.UntilAsync(async () =>
        {
            using var list = await management.GetAsync(new Uri($"{VirtualHostPath()}/connections", UriKind.Relative));
            list.EnsureSuccessStatusCode();
            using var json = System.Text.Json.JsonDocument.Parse(await list.Content.ReadAsStringAsync());
            return json.RootElement.EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToList();
        }, n => n.Count > 0, TimeSpan.FromSeconds(30), $"a connection to vhost {Name} to be listed");
        foreach (var name in names)
        {
            using var closed = await management.DeleteAsync(new Uri($"api/connections/{Uri.EscapeDataString(name)}", UriKind.Relative));
            closed.EnsureSuccessStatusCode();
        }
    }

    internal int NextInstance(string service) => instances.AddOrUpdate(service, 1, (_, n) => n + 1);

    internal void Track(ServiceProcess service) => services.TryAdd(service, 0);

    internal void Forget(ServiceProcess service) => services.TryRemove(service, out _);

    private string VirtualHostPath() => $"api/vhosts/{Uri.EscapeDataString(Name)}";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [GeneratedRegex("[^a-z0-9]")]
    private static partial Regex NotNameChars();

    [GeneratedRegex("^[a-z0-9_]+$")]
    private static partial Regex NameOnly();
}
