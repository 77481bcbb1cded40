using System.Text.Json;
using Platform.Contracts;

namespace Platform.Gateway.Jobs;

public sealed record SubmitJobRequest
{
    public string? Kernel { get; init; }
    public Dictionary<string, string>? Inputs { get; init; }
    public Dictionary<string, JsonElement>? Params { get; init; }
    public int? Replicas { get; init; }
    public decimal? MaxPrice { get; init; }
    public RequirementsRequest? Requirements { get; init; }
    public int? Priority { get; init; }
    public string? Policy { get; init; }
}

public sealed record RequirementsRequest(string? Device, long? MinMemoryMb, string? Region);

/// <param name="Progress">Fraction of the kernel done (0..1) while the attempt runs, as last reported by its worker.</param>
/// <param name="StatusReason">Why the attempt ended (failed, rejected, cancelled, accepted); null while it runs.</param>
/// <param name="Joules">Energy the accepted attempt used; <paramref name="JoulesEstimated"/> says whether a sensor measured it or it was
/// estimated from the worker's calibrated power and the attempt's time.</param>
public sealed record AttemptView(string AttemptId, string WorkerId, string Status, string? Signature, float? Progress = null, StatusReason? StatusReason = null,
    double? Joules = null, bool? JoulesEstimated = null);

/// <summary>The energy of a job's accepted attempts (replicas and spot checks included).</summary>
/// <param name="JoulesPerGflop">Null for kernels whose work is counted as zero GFLOP.</param>
/// <param name="Estimated">True when any attempt's joules were estimated rather than measured.</param>
public sealed record JobEnergy(double Joules, double Gflop, double? JoulesPerGflop, bool Estimated);

/// <summary>Kept for clients written before <see cref="StatusReason"/>: a failed, cancelled or rejected job's reason code and its detail.</summary>
public sealed record JobError(string Reason, string Detail);

/// <param name="Code">A code of the reason catalogue (docs/ARCHITECTURE.md): worker_lost, insufficient_credits, verified...</param>
/// <param name="Message">A sentence for people, with the specifics (which worker, attempt n of m, balance against price) and, where the client can act, what to do.</param>
public sealed record StatusReason(string Code, string Message)
{
    public static StatusReason Of(string code, string? detail) => new(code, JobReasons.Message(code, detail));
}

public sealed record JobView
{
    public required string Id { get; init; }
    public required string Kernel { get; init; }
    public required string Status { get; init; }
    public required IReadOnlyDictionary<string, string> Inputs { get; init; }
    public required IReadOnlyDictionary<string, string> Params { get; init; }
    public required IReadOnlyDictionary<string, string>? Outputs { get; init; }
    public decimal? Cost { get; init; }
    /// <summary>Fraction of the work done: the running attempt's last report, 1 once completed, null before any report.</summary>
    public float? Progress { get; init; }
    public required IReadOnlyList<AttemptView> Attempts { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    /// <summary>Why the job is in its terminal status (every terminal status has one, completed included); null while it is live.</summary>
    public StatusReason? StatusReason { get; init; }
    /// <summary>For failed, cancelled and rejected jobs: <see cref="StatusReason"/>'s code with the raw detail. Kept for older clients.</summary>
    public JobError? Error { get; init; }
    public JobEnergy? Energy { get; init; }
}

public sealed record JobList(IReadOnlyList<JobView> Items, string? NextCursor);
