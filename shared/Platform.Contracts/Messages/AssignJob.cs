namespace Platform.Contracts.Messages;

/// <summary>Command sent to queue worker-{id}: run one attempt of a job before the lease deadline.</summary>
public sealed record AssignJob
{
    public required JobId JobId { get; init; }
    /// <summary>Fencing token: only results carrying the current attempt id are accepted.</summary>
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required JobSpec Spec { get; init; }
    public required DateTimeOffset LeaseDeadline { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
