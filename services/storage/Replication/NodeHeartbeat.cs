using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Storage.Blobs;

namespace Platform.Storage.Replication;

/// <summary>
/// Announces this node and where peers reach it, every heartbeat interval. Peers only fetch from nodes that
/// beat, and only copies on such nodes count towards a pin's replicas.
/// </summary>
public sealed class NodeHeartbeat(NpgsqlDataSource db, BlobStore store, IServer server, IHostApplicationLifetime lifetime, IOptions<StorageOptions> options,
    TimeProvider clock, ILogger<NodeHeartbeat> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The listening address is known only once the server has started.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
            await started.Task;
        var o = options.Value;
        var url = (o.AdvertisedUrl ?? ListeningUrl()).ToString();
        logger.LogInformation("Storage node {NodeId} ({Backend}) reachable by peers at {Url}", o.NodeId, store.Backend.Name, url);
        using var timer = new PeriodicTimer(o.HeartbeatInterval, clock);
        do
        {
            try
            {
                await using var connection = await db.OpenConnectionAsync(stoppingToken);
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    insert into storage_nodes (node_id, url, backend, last_seen_at) values (@NodeId, @url, @backend, @now)
                    on conflict (node_id) do update set url = excluded.url, backend = excluded.backend, last_seen_at = excluded.last_seen_at
                    """, new { o.NodeId, url, backend = store.Backend.Name, now = clock.GetUtcNow() }, cancellationToken: stoppingToken));
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                logger.LogWarning("Heartbeat not recorded: {Message}", ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private Uri ListeningUrl()
    {
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8081";
        // A wildcard listen address is not somewhere a peer can connect to.
        var uri = new UriBuilder(address.Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal));
        if (uri.Host is "0.0.0.0" or "[::]")
            uri.Host = "localhost";
        return uri.Uri;
    }
}
