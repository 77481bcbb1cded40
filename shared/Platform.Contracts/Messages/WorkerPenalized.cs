namespace Platform.Contracts.Messages;

/// <summary>
/// The scheduler found a worker's result wrong (it disagreed with the verified result of the same job).
/// Rewards slashes the operator's stake; the scheduler has already lowered the worker's reputation.
/// One message per losing attempt: <see cref="AttemptId"/> is the idempotency key.
/// </summary>
public sealed record WorkerPenalized
{
    public required JobId JobId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    /// <summary>Machine-readable: verification_failed.</summary>
    public required string Reason { get; init; }
    public required string Detail { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
