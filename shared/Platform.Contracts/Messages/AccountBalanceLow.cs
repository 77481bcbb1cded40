namespace Platform.Contracts.Messages;

/// <summary>
/// An account's available balance fell below the low-balance threshold its owner set: published once per crossing
/// (by the ledger posting that took it from at or above the threshold to below it, or by a threshold raised above
/// the balance). Going back above the threshold re-arms it.
/// </summary>
public sealed record AccountBalanceLow
{
    public required AccountId AccountId { get; init; }
    public required decimal Balance { get; init; }
    public required decimal Threshold { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
