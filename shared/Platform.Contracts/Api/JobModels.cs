using System.Text.Json;

namespace Platform.Contracts.Api;

/// <summary>
/// POST /v1/jobs, and each entry of POST /v1/jobs:batch. Everything is optional here so that the gateway can say
/// what is missing (a 400 naming the field) rather than fail to read the body; <see cref="Kernel"/> and
/// <see cref="Inputs"/> are required. <see cref="Params"/> values are JSON strings, numbers or booleans.
/// </summary>
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

/// <param name="Device">any, cpu or gpu.</param>
public sealed record RequirementsRequest(string? Device = null, long? MinMemoryMb = null, string? Region = null);

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

public sealed record SubmitJobBatchRequest
{
    /// <summary>Each entry is what POST /v1/jobs takes.</summary>
    public IReadOnlyList<SubmitJobRequest?>? Jobs { get; init; }
}

/// <summary>A job array: its jobs (in the order of the entries) and how many are in each status.</summary>
/// <param name="Counts">Jobs per status; statuses with none are left out.</param>
/// <param name="Finished">Every job of the batch has reached a terminal status.</param>
public sealed record JobBatchView(string Id, DateTimeOffset CreatedAt, int Total, bool Finished, IReadOnlyDictionary<string, int> Counts, IReadOnlyList<string> JobIds);

/// <summary>One status change of a job as the event streams send it (<c>event: status</c> of GET /v1/jobs/{id}/events and /v1/batches/{id}/events).</summary>
/// <param name="Reason">A code of the reason catalogue: every terminal status has one, and so does a change that ended an attempt.</param>
/// <param name="Message">The reason as a sentence for people, with its specifics; null when there is no reason.</param>
public sealed record JobStatusChange(string JobId, int Version, string Status, string? AttemptId, string? WorkerId, string? AttemptStatus,
    string? Reason, string? Detail, DateTimeOffset OccurredAt, string? Message = null);

/// <summary><c>event: progress</c> of GET /v1/jobs/{id}/events: the running attempt's fraction of the kernel done (0..1).</summary>
public sealed record JobProgress(string JobId, string AttemptId, float Fraction);
