namespace Platform.Contracts.Messages;

/// <summary>The scheduler cancelled a job before it finished; rewards refunds its escrow.</summary>
public sealed record JobCancelled
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required string Reason { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
