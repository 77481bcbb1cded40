namespace Platform.Client;

/// <summary>GET /v1/workers: one node of the network.</summary>
/// <param name="Reputation">1.0 at start; halved by every result that loses a verification.</param>
/// <param name="OperatorStake">What the worker's operator has staked.</param>
/// <param name="PublicKey">The key its results are signed with (SubjectPublicKeyInfo, base64).</param>
public sealed record WorkerInfo(string WorkerId, string OperatorAccountId, string Region, bool Online, int Slots, int Active, IReadOnlyList<string> Kernels,
    IReadOnlyList<WorkerDevice> Devices, IReadOnlyDictionary<string, double> GflopsPerKernel, IReadOnlyDictionary<string, string> BackendPerKernel,
    double PowerWatts, bool PowerMeasured, IReadOnlyList<string> Notes, double Reputation, decimal OperatorStake, string? PublicKey, DateTimeOffset LastSeenAt);

/// <param name="Kind">cpu or gpu.</param>
public sealed record WorkerDevice(string Kind, string Name, string Backend, long MemoryMb);

/// <summary>GET /v1/network: the network at a glance.</summary>
public sealed record NetworkSummary(int WorkersOnline, int WorkersOffline, IReadOnlyDictionary<string, int> Regions, IReadOnlyDictionary<string, int> Devices,
    int Slots, int ActiveAttempts, double Load, int JobsQueued, int JobsPerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned);
