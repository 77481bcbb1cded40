namespace Platform.Contracts.Messages;

/// <summary>Rewards reserved the job's estimated cost in escrow; the job may be scheduled.</summary>
[Bundled]
public sealed record JobFunded
{
    public required JobId JobId { get; init; }
    public required decimal Escrowed { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
