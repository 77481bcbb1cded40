namespace Platform.Contracts.Messages;

/// <summary>
/// Rewards holds escrow for these jobs long after every job should have ended: the scheduler publishes again the
/// ending of each one that ended (JobCompleted, JobFailed or JobCancelled, as it was), and the idempotent consumers
/// settle or refund what they missed. A job that has not ended is left to the scheduler's own deadline.
/// </summary>
public sealed record JobOutcomesRequested
{
    public required IReadOnlyList<JobId> JobIds { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
