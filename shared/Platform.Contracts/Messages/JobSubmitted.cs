namespace Platform.Contracts.Messages;

/// <summary>The gateway accepted and persisted a job. Rewards escrows its estimate; the scheduler records it.</summary>
[Bundled]
public sealed record JobSubmitted
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required JobSpec Spec { get; init; }
    /// <summary>Work estimated from the input shapes by the kernel catalogue; drives pricing and placement.</summary>
    public required double EstimatedGflop { get; init; }
    /// <summary>Total size of the inputs, which a worker has to download before it can start.</summary>
    public long InputBytes { get; init; }
    /// <summary>
    /// Size of the outputs the kernel's shape model plans for the inputs (data bytes): the network's own figure, by
    /// which the job pays for keeping its output forever. Zero from a gateway older than this field.
    /// </summary>
    public long OutputBytes { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
