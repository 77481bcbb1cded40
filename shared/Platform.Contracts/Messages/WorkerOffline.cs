namespace Platform.Contracts.Messages;

/// <summary>A worker is shutting down cleanly and takes no more work.</summary>
public sealed record WorkerOffline
{
    public required WorkerId WorkerId { get; init; }
    /// <summary><see cref="Signing.WorkerMessageSignature"/> made with the worker's registered identity key.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
