namespace Platform.Client;

/// <summary>GET /v1/workers: one node of the network.</summary>
/// <param name="Reputation">1.0 at start; halved by every result that loses a verification.</param>
/// <param name="OperatorStake">What the worker's operator has staked.</param>
/// <param name="PublicKey">The key its results are signed with (SubjectPublicKeyInfo, base64).</param>
public sealed record WorkerInfo(string WorkerId, string OperatorAccountId, string Region, bool Online, int Slots, int Active, IReadOnlyList<string> Kernels,
    IReadOnlyList<WorkerDevice> Devices, IReadOnlyDictionary<string, double> GflopsPerKernel, IReadOnlyDictionary<string, string> BackendPerKernel,
    double PowerWatts, bool PowerMeasured, IReadOnlyList<string> Notes, double Reputation, decimal OperatorStake, string? PublicKey, DateTimeOffset LastSeenAt,
    EnergySummary? Energy = null);

/// <summary>Energy of accepted work: measured by a power sensor where the node has one, otherwise estimated.</summary>
/// <param name="Jobs">For a worker, its accepted attempts; for the network, its completed jobs.</param>
/// <param name="MeasuredShare">Fraction of the attempts whose joules were measured rather than estimated.</param>
public sealed record EnergySummary(long Jobs, double Joules, double Gflop, double? JoulesPerJob, double? JoulesPerGflop, double MeasuredShare);

/// <param name="Kind">cpu or gpu.</param>
public sealed record WorkerDevice(string Kind, string Name, string Backend, long MemoryMb);

/// <summary>GET /v1/network: the network at a glance.</summary>
/// <param name="Verification">Results computed beyond the replicas clients asked for, over the last completed jobs; null from older schedulers.</param>
public sealed record NetworkSummary(int WorkersOnline, int WorkersOffline, IReadOnlyDictionary<string, int> Regions, IReadOnlyDictionary<string, int> Devices,
    int Slots, int ActiveAttempts, double Load, int JobsQueued, int JobsPerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned,
    VerificationSummary? Verification = null, EnergySummary? Energy = null);

/// <param name="Overhead">Extra attempts (spot checks and tie-breakers) per job.</param>
public sealed record VerificationSummary(int Jobs, int ExtraAttempts, double Overhead, int SpotChecked, int Mismatches);

/// <summary>GET /v1/workers/{id}/placement: why a worker gets work or does not.</summary>
/// <param name="Status">The worker's standing in one sentence.</param>
/// <param name="Reasons">Each reason of <paramref name="Recent"/> counted, most frequent first, with what to do about it.</param>
/// <param name="Recent">Its latest placements, newest first.</param>
/// <param name="Trust">Per kernel: results accepted in a row and the chance the next single-replica result is spot-checked.</param>
public sealed record WorkerPlacement(string WorkerId, bool Online, bool GetsWork, string Status, IReadOnlyList<PlacementReasonCount> Reasons,
    IReadOnlyList<PlacementDecision> Recent, IReadOnlyList<KernelTrust> Trust);

/// <param name="Code">chosen, stake_too_low, reputation_too_low, heartbeats_missed, kernel_unsupported, device_mismatch, region_mismatch,
/// memory_too_small, same_operator_as_result, no_free_slot, failed_this_job or slower_than_chosen.</param>
public sealed record PlacementReasonCount(string Code, int Count, string Message, string? Fix);

/// <param name="ChosenWorkerId">The worker that got the job; null when no worker could take it.</param>
public sealed record PlacementDecision(DateTimeOffset At, string Kernel, string Code, string Message, string? Fix, string? ChosenWorkerId);

public sealed record KernelTrust(string Kernel, int Streak, double CheckProbability, long Accepted, long Checked, long Mismatches);
