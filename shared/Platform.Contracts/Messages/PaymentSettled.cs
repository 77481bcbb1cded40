namespace Platform.Contracts.Messages;

/// <summary>Rewards settled a completed job: the client paid Cost, the rest of the escrow was refunded.</summary>
[Bundled]
public sealed record PaymentSettled
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required decimal Cost { get; init; }
    public required decimal Refunded { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required decimal OperatorPaid { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
