using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Client;

/// <summary>POST /v1/jobs. <see cref="Params"/> values are JSON strings, numbers or booleans.</summary>
public sealed record SubmitJobRequest
{
    public required string Kernel { get; init; }
    /// <summary>Input name to the CID of a pinned .npy tensor.</summary>
    public required IReadOnlyDictionary<string, string> Inputs { get; init; }
    public IReadOnlyDictionary<string, JsonElement>? Params { get; init; }
    public int? Replicas { get; init; }
    public decimal? MaxPrice { get; init; }
    public JobRequirements? Requirements { get; init; }
    public int? Priority { get; init; }
    /// <summary>latency, energy or cost.</summary>
    public string? Policy { get; init; }
}

/// <param name="Device">any, cpu or gpu.</param>
public sealed record JobRequirements(string? Device = null, long? MinMemoryMb = null, string? Region = null);

public sealed record Job
{
    public required string Id { get; init; }
    public required string Kernel { get; init; }
    /// <summary>pending, queued, assigned, running, verifying, completed, failed, cancelled or rejected.</summary>
    public required string Status { get; init; }
    public IReadOnlyDictionary<string, string> Inputs { get; init; } = new Dictionary<string, string>();
    public IReadOnlyDictionary<string, string> Params { get; init; } = new Dictionary<string, string>();
    /// <summary>Output name to CID, once completed.</summary>
    public IReadOnlyDictionary<string, string>? Outputs { get; init; }
    public decimal? Cost { get; init; }
    /// <summary>Fraction done (0..1) as the running attempt last reported it; 1 once completed.</summary>
    public float? Progress { get; init; }
    public IReadOnlyList<JobAttempt> Attempts { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    /// <summary>Why the job is in its terminal status (completed included): a code and a sentence. Null while the job is live.</summary>
    public StatusReason? StatusReason { get; init; }
    /// <summary>A failed, cancelled or rejected job's reason code and raw detail; <see cref="StatusReason"/> says it better.</summary>
    public JobError? Error { get; init; }
    /// <summary>Energy of the accepted attempts (replicas and spot checks included); null until one is accepted.</summary>
    public JobEnergy? Energy { get; init; }

    public bool IsFinished => JobStatuses.IsTerminal(Status);
}

/// <param name="StatusReason">Why the attempt ended (for example worker_lost, which is why the job ran again); null while it runs.</param>
/// <param name="Joules">Energy of an accepted attempt; <paramref name="JoulesEstimated"/> is false when a power sensor measured it.</param>
public sealed record JobAttempt(string AttemptId, string WorkerId, string Status, string? Signature, float? Progress = null, StatusReason? StatusReason = null,
    double? Joules = null, bool? JoulesEstimated = null);

/// <param name="Estimated">True when any attempt's joules were estimated from calibrated power and time rather than measured.</param>
public sealed record JobEnergy(double Joules, double Gflop, double? JoulesPerGflop, bool Estimated);

/// <param name="Code">Machine-readable: worker_lost, insufficient_credits, verified... (docs/ARCHITECTURE.md lists them all).</param>
/// <param name="Message">A sentence for people, with the specifics and, where there is one, what to do next.</param>
public sealed record StatusReason(string Code, string Message);

public sealed record JobError(string Reason, string Detail);

public sealed record JobPage(IReadOnlyList<Job> Items, string? NextCursor);

/// <summary>POST /v1/jobs:batch: every entry is what POST /v1/jobs takes; the gateway creates all of them or none.</summary>
public sealed record SubmitJobsRequest(IReadOnlyList<SubmitJobRequest> Jobs);

/// <summary>Jobs submitted together (POST /v1/jobs:batch) and followed, counted and cancelled as one.</summary>
public sealed record JobBatch
{
    public required string Id { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public int Total { get; init; }
    /// <summary>True once every job of the batch is in a terminal status.</summary>
    public bool Finished { get; init; }
    /// <summary>Job status (pending, running, completed, failed...) to how many of the batch's jobs are in it; statuses with none are left out.</summary>
    public IReadOnlyDictionary<string, int> Counts { get; init; } = new Dictionary<string, int>();
    /// <summary>The batch's jobs, in the order of the entries submitted.</summary>
    public IReadOnlyList<string> JobIds { get; init; } = [];

    /// <summary>How many of the batch's jobs are in <paramref name="status"/> (0 for a status the gateway left out).</summary>
    public int Count(string status) => Counts.GetValueOrDefault(status);

    /// <summary>Jobs that will not change any more: completed, failed, cancelled or rejected.</summary>
    [JsonIgnore] // derived from Counts: the batch as JSON stays what the gateway sent
    public int Done => Counts.Where(c => JobStatuses.IsTerminal(c.Key)).Sum(c => c.Value);
}

public static class JobStatuses
{
    /// <summary>The statuses a job never leaves.</summary>
    public static readonly IReadOnlySet<string> Terminal = new HashSet<string>(StringComparer.Ordinal) { "completed", "failed", "cancelled", "rejected" };

    public static bool IsTerminal(string? status) => status is not null && Terminal.Contains(status);
}
