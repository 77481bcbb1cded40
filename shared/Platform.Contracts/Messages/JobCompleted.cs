namespace Platform.Contracts.Messages;

/// <summary>A job's result was accepted. Rewards settles escrow, pays the operator and mints credits.</summary>
public sealed record JobCompleted
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required string Kernel { get; init; }
    public required IReadOnlyDictionary<string, Cid> Outputs { get; init; }
    public required AttemptMetrics Metrics { get; init; }
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
