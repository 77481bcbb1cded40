namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>Every worker the network knows, online first. Needs no key.</summary>
    public Task<IReadOnlyList<WorkerInfo>> GetWorkersAsync(CancellationToken ct = default) => GetAsync<IReadOnlyList<WorkerInfo>>("v1/workers", ct);

    /// <summary>Workers, load, throughput, credits minted and bytes pinned. Needs no key.</summary>
    public Task<NetworkSummary> GetNetworkAsync(CancellationToken ct = default) => GetAsync<NetworkSummary>("v1/network", ct);
}
