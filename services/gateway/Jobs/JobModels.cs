using System.Text.Json;

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

public sealed record AttemptView(string AttemptId, string WorkerId, string Status, string? Signature);

public sealed record JobError(string Reason, string Detail);

public sealed record JobView
{
    public required string Id { get; init; }
    public required string Kernel { get; init; }
    public required string Status { get; init; }
    public required IReadOnlyDictionary<string, string> Inputs { get; init; }
    public required IReadOnlyDictionary<string, string> Params { get; init; }
    public required IReadOnlyDictionary<string, string>? Outputs { get; init; }
    public decimal? Cost { get; init; }
    public required IReadOnlyList<AttemptView> Attempts { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public JobError? Error { get; init; }
}

public sealed record JobList(IReadOnlyList<JobView> Items, string? NextCursor);
