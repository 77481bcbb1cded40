namespace Platform.Contracts.Messages;

public sealed record CreditsMinted
{
    public required JobId JobId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required decimal Amount { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
