namespace Platform.Contracts.Messages;

public sealed record AttemptFailed
{
    public required JobId JobId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    /// <summary>Machine-readable reason, for example input_invalid or input_missing.</summary>
    public required string Reason { get; init; }
    public required string Detail { get; init; }
    /// <summary><see cref="Signing.WorkerMessageSignature"/> made with the worker's registered identity key.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
