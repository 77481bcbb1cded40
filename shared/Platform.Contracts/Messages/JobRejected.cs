namespace Platform.Contracts.Messages;

/// <summary>Rewards refused to fund the job (for example insufficient credits); the job is terminal.</summary>
public sealed record JobRejected
{
    public required JobId JobId { get; init; }
    /// <summary>Machine-readable reason such as insufficient_credits or max_price_exceeded.</summary>
    public required string Reason { get; init; }
    public required string Detail { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
