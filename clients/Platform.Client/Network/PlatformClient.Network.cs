namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>Every worker the network knows, online first. Needs no key.</summary>
    public Task<IReadOnlyList<WorkerInfo>> GetWorkersAsync(CancellationToken ct = default) => GetAsync<IReadOnlyList<WorkerInfo>>("v1/workers", ct);

    /// <summary>Why a worker gets work or does not: its latest placements with the reasons it was passed over and their fixes. Needs no key.</summary>
    public Task<WorkerPlacement> GetWorkerPlacementAsync(string workerId, CancellationToken ct = default) =>
        GetAsync<WorkerPlacement>($"v1/workers/{Uri.EscapeDataString(workerId)}/placement", ct);

    /// <summary>Workers, load, throughput, credits minted and bytes pinned. Needs no key.</summary>
    public Task<NetworkSummary> GetNetworkAsync(CancellationToken ct = default) => GetAsync<NetworkSummary>("v1/network", ct);

    /// <summary>The kernel catalogue the network's workers run: inputs, parameters, outputs and shape rules.</summary>
    public Task<IReadOnlyList<Platform.Contracts.Api.KernelView>> GetKernelsAsync(CancellationToken ct = default) =>
        GetAsync<IReadOnlyList<Platform.Contracts.Api.KernelView>>("v1/kernels", ct);
}
