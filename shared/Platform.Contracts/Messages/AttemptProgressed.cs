namespace Platform.Contracts.Messages;

/// <summary>A long attempt's progress, sent every few seconds at most; drives the job view, never the job's state.</summary>
public sealed record AttemptProgressed
{
    public required JobId JobId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    /// <summary>Fraction of the kernel's work done, 0 to 1.</summary>
    public required double Fraction { get; init; }
    /// <summary><see cref="Signing.WorkerMessageSignature"/> made with the worker's registered identity key.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
