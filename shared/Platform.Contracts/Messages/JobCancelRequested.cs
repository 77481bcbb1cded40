namespace Platform.Contracts.Messages;

/// <summary>
/// The job's owner asked to cancel it through the gateway. A single job's cancel is sent as a request and answered
/// with <see cref="JobCancelAnswered"/>, so the client is told what happened; a batch's cancels are published.
/// </summary>
public sealed record JobCancelRequested
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}

/// <summary>
/// The scheduler's answer to a cancel sent as a request: whether the job is cancelled now (by this request or an
/// earlier one), or else the status it had finished in.
/// </summary>
public sealed record JobCancelAnswered
{
    public required JobId JobId { get; init; }
    public required bool Cancelled { get; init; }
    public required string Status { get; init; }
}
