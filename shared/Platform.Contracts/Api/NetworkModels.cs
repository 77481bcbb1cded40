using Platform.Contracts.Messages;

namespace Platform.Contracts.Api;

/// <param name="BackendPerKernel">The backend (simd, opencl, ilgpu) each kernel runs on: the one that calibrated fastest.</param>
/// <param name="PowerMeasured">Whether <paramref name="PowerWatts"/> was read from a sensor rather than estimated.</param>
/// <param name="Notes">What the node tells its operator about its capabilities, such as why OpenCL is not used.</param>
/// <param name="Reputation">1.0 at start; halved by every result that loses a verification; workers below the minimum get no work.</param>
/// <param name="OperatorStake">What the worker's operator has staked; below the minimum its workers get no work.</param>
/// <param name="PublicKey">The key the worker's results are signed with (SubjectPublicKeyInfo, base64).</param>
public sealed record WorkerView(string WorkerId, string OperatorAccountId, string Region, bool Online, int Slots, int Active, IReadOnlyList<string> Kernels,
    IReadOnlyList<DeviceInfo> Devices, IReadOnlyDictionary<string, double> GflopsPerKernel, IReadOnlyDictionary<string, string> BackendPerKernel,
    double PowerWatts, bool PowerMeasured, IReadOnlyList<string> Notes, double Reputation, decimal OperatorStake, string? PublicKey, DateTimeOffset LastSeenAt,
    EnergyView Energy)
{
    /// <summary>
    /// The GFLOP/s per kernel the scheduler measured of the worker's accepted attempts (median of the latest samples),
    /// for kernels with enough samples; placement believes <see cref="GflopsPerKernel"/> only up to a multiple of it.
    /// </summary>
    public IReadOnlyDictionary<string, double>? MeasuredGflopsPerKernel { get; init; }

    /// <summary>The GFLOP/s per kernel placement and attempt deadlines use: the claim, bounded by the measurement.</summary>
    public IReadOnlyDictionary<string, double>? EffectiveGflopsPerKernel { get; init; }

    /// <summary>The slots placement uses: the announced ones, at most the scheduler's maximum.</summary>
    public int? EffectiveSlots { get; init; }

    /// <summary>
    /// The revision of the kernels' arithmetic the worker announced (Platform.Contracts.Kernels.KernelArithmetic);
    /// null for an older node. Results of two workers at the same revision are verified by equal output CIDs.
    /// </summary>
    public int? KernelRevision { get; init; }

    /// <summary>
    /// What the node's calibration measured on each backend it opened, backend → kernel → GFLOP/s, as the node
    /// announced it (unchecked, like every claim); <see cref="BackendPerKernel"/> is the fastest of each.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>>? GflopsPerBackend { get; init; }
}

/// <summary>
/// Energy of accepted work, as the workers reported it per attempt: measured by a power sensor (RAPL) where the
/// node has one, otherwise estimated from its calibrated power and the attempt's time.
/// </summary>
/// <param name="Jobs">For a worker, its accepted attempts; for the network, its completed jobs (whose energy includes every replica and spot check).</param>
/// <param name="JoulesPerJob">Null until there is a job.</param>
/// <param name="JoulesPerGflop">Null until some GFLOP are counted.</param>
/// <param name="MeasuredShare">Fraction of the attempts whose joules were measured rather than estimated.</param>
public sealed record EnergyView(long Jobs, double Joules, double Gflop, double? JoulesPerJob, double? JoulesPerGflop, double MeasuredShare)
{
    public static EnergyView Of(long jobs, long attempts, long measured, double joules, double gflop) =>
        new(jobs, joules, gflop, jobs > 0 ? joules / jobs : null, gflop > 0 ? joules / gflop : null, attempts > 0 ? (double)measured / attempts : 0);
}

/// <param name="Verification">What verifying results cost the network lately.</param>
/// <param name="Energy">Energy of the accepted attempts of the same last 1,000 completed jobs, per job and per GFLOP.</param>
public sealed record NetworkView(int WorkersOnline, int WorkersOffline, IReadOnlyDictionary<string, int> Regions, IReadOnlyDictionary<string, int> Devices,
    int Slots, int ActiveAttempts, double Load, int JobsQueued, int JobsPerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned,
    VerificationView Verification, EnergyView Energy)
{
    /// <summary>
    /// Node-to-network messages the scheduler dropped since it started counting, by reason: unregistered_worker (no
    /// operator registered the worker id), key_mismatch (not signed with the registered key), wrong_exchange (sent
    /// through one node's exchange for another worker).
    /// </summary>
    public IReadOnlyDictionary<string, long> RejectedNodeMessages { get; init; } = new Dictionary<string, long>();

    /// <summary>
    /// Messages waiting in the deployment's <c>_error</c> queues: dead letters each service replays by itself, and
    /// those parked after their replays (<c>./platform dlq</c>). The broker's statistics, seconds behind; null when
    /// its management API could not be read.
    /// </summary>
    public long? DeadLetters { get; init; }
}

/// <summary>
/// Verification overhead over the last <paramref name="Jobs"/> completed jobs (at most 1,000): results computed
/// beyond the replicas clients asked for (spot checks and tie-breakers), per job.
/// </summary>
/// <param name="SpotChecked">Jobs of one replica whose result was checked by another operator's worker.</param>
/// <param name="Mismatches">Results that lost a comparison.</param>
public sealed record VerificationView(int Jobs, int ExtraAttempts, double Overhead, int SpotChecked, int Mismatches);

/// <summary>
/// Why a worker does or does not get work: <paramref name="Status"/> in one sentence, then its latest placements
/// with the reason it was passed over in each, the reasons counted, and its trust per kernel.
/// </summary>
/// <param name="GetsWork">Whether the worker may be given work now (online, heartbeats on time, enough stake and reputation).</param>
/// <param name="Reasons">Each reason of <paramref name="Recent"/> with how often it occurred, most frequent first; message and fix from its latest occurrence.</param>
/// <param name="Recent">Its latest placements, newest first: every job placed while it was online, chosen or not.</param>
public sealed record WorkerPlacementView(string WorkerId, bool Online, bool GetsWork, string Status, IReadOnlyList<PlacementReasonCount> Reasons,
    IReadOnlyList<PlacementDecisionView> Recent, IReadOnlyList<KernelTrustView> Trust);

/// <param name="Code">chosen, stake_too_low, reputation_too_low, heartbeats_missed, kernel_unsupported, device_mismatch, region_mismatch,
/// memory_too_small, same_operator_as_result, no_free_slot, failed_this_job or slower_than_chosen.</param>
public sealed record PlacementReasonCount(string Code, int Count, string Message, string? Fix);

/// <param name="ChosenWorkerId">The worker that got the job; null when no worker could take it.</param>
public sealed record PlacementDecisionView(DateTimeOffset At, string Kernel, string Code, string Message, string? Fix, string? ChosenWorkerId);

/// <summary>Adaptive trust for one kernel: results accepted in a row, and the chance its next single-replica result is spot-checked.</summary>
public sealed record KernelTrustView(string Kernel, int Streak, double CheckProbability, long Accepted, long Checked, long Mismatches);

/// <summary>The network over time (GET /v1/network/history): one sample per <paramref name="IntervalSeconds"/>, oldest first.</summary>
public sealed record NetworkHistoryView(int IntervalSeconds, IReadOnlyList<NetworkSample> Samples);

/// <param name="At">The end of the interval the sample covers.</param>
/// <param name="Queued">Jobs waiting for a worker at <paramref name="At"/>.</param>
/// <param name="Active">Jobs assigned or running at <paramref name="At"/> (as <c>activeAttempts</c> of GET /v1/network counts them); <paramref name="Slots"/> is what the online workers offer.</param>
/// <param name="Completed">Jobs completed during the interval.</param>
/// <param name="JobsPerMinute">The same, per minute.</param>
/// <param name="LatencyP50Ms">Median time of those jobs from the scheduler taking them to their completion; null when none completed.</param>
/// <param name="LatencyP99Ms">Their 99th percentile.</param>
public sealed record NetworkSample(DateTimeOffset At, int Queued, int Active, int Slots, int Online, int Completed, double JobsPerMinute,
    double? LatencyP50Ms, double? LatencyP99Ms);

/// <summary>One worker over time (GET /v1/workers/{id}/history), sampled while it was online, oldest first.</summary>
public sealed record WorkerHistoryView(string WorkerId, int IntervalSeconds, IReadOnlyList<WorkerSample> Samples);

/// <param name="GflopsPerKernel">What the scheduler measured of its accepted attempts per kernel (median of the latest samples, for kernels with as many as placement needs to believe them), not what it claims.</param>
/// <param name="JoulesPerGflop">Checked joules per GFLOP of the work accepted since the worker's previous sample; null when none was.</param>
public sealed record WorkerSample(DateTimeOffset At, int Active, int Slots, IReadOnlyDictionary<string, double> GflopsPerKernel, double? JoulesPerGflop);
