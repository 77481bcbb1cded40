namespace Platform.Contracts.Messages;

public sealed record WorkerHeartbeat
{
    public required WorkerId WorkerId { get; init; }
    public required int ActiveAttempts { get; init; }
    /// <summary>The attempts the worker is running: their leases are renewed by this beat.</summary>
    public IReadOnlyList<AttemptId> Attempts { get; init; } = [];
    /// <summary><see cref="Signing.WorkerMessageSignature"/> made with the worker's registered identity key.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
