namespace Platform.Contracts.Messages;

/// <summary>
/// An operator's stake moved (staked, unstaked or slashed). The scheduler gives work only to workers whose
/// operator has staked at least the configured minimum. <see cref="Version"/> grows with every change (the
/// ledger transaction id), so a reordered older message never overwrites a newer stake.
/// </summary>
public sealed record StakeChanged
{
    public required AccountId OperatorAccountId { get; init; }
    public required decimal Staked { get; init; }
    public required long Version { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
