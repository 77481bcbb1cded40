namespace Platform.Contracts.Messages;

/// <summary>A job ended without a result; rewards refunds its escrow.</summary>
public sealed record JobFailed
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required string Reason { get; init; }
    public required string Detail { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
