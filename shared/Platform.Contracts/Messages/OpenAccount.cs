namespace Platform.Contracts.Messages;

/// <summary>
/// Request from the gateway to rewards: open the ledger account for a new API account and grant its
/// starting credits. Answered with <see cref="AccountOpened"/>; idempotent by account id.
/// </summary>
public sealed record OpenAccount
{
    public required AccountId AccountId { get; init; }
    public required string Role { get; init; }
    public required decimal InitialCredits { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}

public sealed record AccountOpened
{
    public required AccountId AccountId { get; init; }
    public required decimal Balance { get; init; }
}
