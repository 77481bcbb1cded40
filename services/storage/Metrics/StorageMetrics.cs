using Platform.Hosting.Metrics;

namespace Platform.Storage.Metrics;

/// <summary>
/// What storage holds and how healthy its copies are, read from its database. Each is one scan of the pins or
/// replicas table an interval: these grow with the data kept, not with every message.
/// </summary>
public static class StorageMetrics
{
    public static IServiceCollection AddStorageMetrics(this IServiceCollection services) => services
        .AddDatabaseGauge("platform.storage.bytes", "By", "Bytes pinned (each blob once, whatever its copies)",
            "select coalesce(sum(size), 0)::float8 as value from pins")
        .AddDatabaseGauge("platform.storage.blobs", "{blob}", "Blobs pinned",
            "select count(*) as value from pins")
        .AddDatabaseGauge("platform.storage.replicas", "{replica}", "Copies by storage node and state (ok, copying, lost)",
            "select node_id as node, status as state, count(*) as value from replicas group by node_id, status")
        // The scrubber re-verifies every copy within Storage:ScrubPeriod: this age staying under it is the scrub keeping up.
        .AddDatabaseGauge("platform.storage.scrub.oldest_age", "s", "Time since each node's least recently verified copy was last verified",
            "select node_id as node, extract(epoch from now() - min(verified_at))::float8 as value from replicas where status = 'ok' group by node_id");
}
