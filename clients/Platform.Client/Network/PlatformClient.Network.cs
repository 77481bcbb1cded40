using Platform.Contracts.Api;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>Every worker the network knows, online first. Needs no key.</summary>
    [ApiOperation("GET /v1/workers")]
    public Task<IReadOnlyList<WorkerView>> GetWorkersAsync(CancellationToken ct = default) => GetAsync<IReadOnlyList<WorkerView>>("v1/workers", ct);

    /// <summary>Why a worker gets work or does not: its latest placements with the reasons it was passed over and their fixes. Needs no key.</summary>
    [ApiOperation("GET /v1/workers/{id}/placement")]
    public Task<WorkerPlacementView> GetWorkerPlacementAsync(string workerId, CancellationToken ct = default) =>
        GetAsync<WorkerPlacementView>($"v1/workers/{Uri.EscapeDataString(workerId)}/placement", ct);

    /// <summary>Workers, load, throughput, credits minted and bytes pinned. Needs no key.</summary>
    [ApiOperation("GET /v1/network")]
    public Task<NetworkView> GetNetworkAsync(CancellationToken ct = default) => GetAsync<NetworkView>("v1/network", ct);

    /// <summary>
    /// The network over the last <paramref name="minutes"/> (an hour when null): one sample per interval of queue,
    /// slots, jobs completed and their latency. Needs no key.
    /// </summary>
    [ApiOperation("GET /v1/network/history")]
    public Task<NetworkHistoryView> GetNetworkHistoryAsync(int? minutes = null, CancellationToken ct = default) =>
        GetAsync<NetworkHistoryView>("v1/network/history" + Query(("minutes", minutes?.ToString(System.Globalization.CultureInfo.InvariantCulture))), ct);

    /// <summary>One worker over the last <paramref name="minutes"/>: busy slots, measured GFLOP/s per kernel, J/GFLOP. Needs no key.</summary>
    [ApiOperation("GET /v1/workers/{id}/history")]
    public Task<WorkerHistoryView> GetWorkerHistoryAsync(string workerId, int? minutes = null, CancellationToken ct = default) =>
        GetAsync<WorkerHistoryView>($"v1/workers/{Uri.EscapeDataString(workerId)}/history" + Query(("minutes", minutes?.ToString(System.Globalization.CultureInfo.InvariantCulture))), ct);

    /// <summary>The kernel catalogue the network's workers run: inputs, parameters, outputs and shape rules.</summary>
    [ApiOperation("GET /v1/kernels")]
    public Task<IReadOnlyList<KernelView>> GetKernelsAsync(CancellationToken ct = default) =>
        GetAsync<IReadOnlyList<KernelView>>("v1/kernels", ct);
}
