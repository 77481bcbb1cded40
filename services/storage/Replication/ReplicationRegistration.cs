using MassTransit;
using Platform.Storage.Blobs;

namespace Platform.Storage.Replication;

public static class ReplicationRegistration
{
    /// <summary>
    /// Each node has its own queue for BlobPinned, so every node hears of every pin; the node id names it and
    /// must be known before the bus is configured.
    /// </summary>
    public static IBusRegistrationConfigurator AddReplication(this IBusRegistrationConfigurator bus, IConfiguration configuration)
    {
        var nodeId = configuration[$"{StorageOptions.SectionName}:{nameof(StorageOptions.NodeId)}"] ?? new StorageOptions().NodeId;
        bus.AddConsumer<BlobPinnedConsumer>().Endpoint(e => e.Name = $"storage-{nodeId}-replication");
        bus.AddRequestClient<Platform.Contracts.Messages.ChargePinFee>(RequestTimeout.After(s: 15));
        return bus;
    }

    public static WebApplicationBuilder AddReplicationServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddHttpClient(Peers.HttpClientName, http => http.Timeout = TimeSpan.FromMinutes(30));
        builder.Services.AddSingleton<Peers>();
        builder.Services.AddSingleton<Replicator>();
        builder.Services.AddSingleton<Scrubber>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Scrubber>());
        builder.Services.AddHostedService<NodeHeartbeat>();
        return builder;
    }
}
