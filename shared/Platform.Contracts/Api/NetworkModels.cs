using Platform.Contracts.Messages;

namespace Platform.Contracts.Api;

/// <param name="BackendPerKernel">The backend (simd, opencl) each kernel runs on: the one that calibrated fastest.</param>
/// <param name="PowerMeasured">Whether <paramref name="PowerWatts"/> was read from a sensor rather than estimated.</param>
/// <param name="Notes">What the node tells its operator about its capabilities, such as why OpenCL is not used.</param>
/// <param name="Reputation">1.0 at start; halved by every result that loses a verification; workers below the minimum get no work.</param>
/// <param name="OperatorStake">What the worker's operator has staked; below the minimum its workers get no work.</param>
/// <param name="PublicKey">The key the worker's results are signed with (SubjectPublicKeyInfo, base64).</param>
public sealed record WorkerView(string WorkerId, string OperatorAccountId, string Region, bool Online, int Slots, int Active, IReadOnlyList<string> Kernels,
    IReadOnlyList<DeviceInfo> Devices, IReadOnlyDictionary<string, double> GflopsPerKernel, IReadOnlyDictionary<string, string> BackendPerKernel,
    double PowerWatts, bool PowerMeasured, IReadOnlyList<string> Notes, double Reputation, decimal OperatorStake, string? PublicKey, DateTimeOffset LastSeenAt);

public sealed record NetworkView(int WorkersOnline, int WorkersOffline, IReadOnlyDictionary<string, int> Regions, IReadOnlyDictionary<string, int> Devices,
    int Slots, int ActiveAttempts, double Load, int JobsQueued, int JobsPerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned);
