namespace Platform.Contracts.Messages;

/// <summary>The job's owner asked to cancel it through the gateway.</summary>
public sealed record JobCancelRequested
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
