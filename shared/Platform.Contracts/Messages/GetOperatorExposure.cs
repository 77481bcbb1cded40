namespace Platform.Contracts.Messages;

/// <summary>
/// Request from rewards to the scheduler before an operator's stake is released: what of this operator's work
/// could still cost it its stake. Answered with <see cref="OperatorExposure"/>; reads only, so any number of
/// asks are harmless.
/// </summary>
public sealed record GetOperatorExposure
{
    public required AccountId OperatorAccountId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}

public sealed record OperatorExposure
{
    public required AccountId OperatorAccountId { get; init; }
    /// <summary>Results of the operator's workers that are in but not yet accepted or rejected (awaiting another replica, a spot check or a tie-break).</summary>
    public required int UnverifiedAttempts { get; init; }
    /// <summary>
    /// Every attempt of the operator's workers the scheduler rejected and penalized (a <see cref="WorkerPenalized"/>
    /// was sent for each). Rewards compares them with the penalties it has applied to find slashes still on their way.
    /// </summary>
    public required IReadOnlyList<AttemptId> PenalizedAttemptIds { get; init; }
}
