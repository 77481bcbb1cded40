namespace Platform.Contracts.Messages;

public sealed record AttemptCompleted
{
    public required JobId JobId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required IReadOnlyDictionary<string, Cid> Outputs { get; init; }
    public required AttemptMetrics Metrics { get; init; }
    /// <summary>Signature over (job id, attempt id, output CIDs), base64; verified once workers have identities.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}

public sealed record AttemptMetrics
{
    public required double DurationMs { get; init; }
    public required double Gflop { get; init; }
    public required string Device { get; init; }
    public double? Joules { get; init; }
    /// <summary>True when <see cref="Joules"/> was estimated from calibrated power and time rather than read from a sensor.</summary>
    public bool JoulesEstimated { get; init; } = true;
}
