namespace Platform.Contracts.Messages;

/// <summary>
/// A job's result was accepted. Rewards settles escrow, pays the operator of every paid accepted attempt and
/// mints credits for every accepted attempt. The top-level attempt fields name the result the client got (the
/// first accepted attempt); <see cref="Accepted"/> lists every attempt whose result agreed with it.
/// </summary>
[Bundled]
public sealed record JobCompleted
{
    public required JobId JobId { get; init; }
    public required AccountId ClientAccountId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required string Kernel { get; init; }
    public required IReadOnlyDictionary<string, Cid> Outputs { get; init; }
    public required AttemptMetrics Metrics { get; init; }
    public string? Signature { get; init; }
    /// <summary>Every accepted attempt, the first one included. Null from older schedulers: then only the top-level attempt.</summary>
    public IReadOnlyList<AcceptedAttempt>? Accepted { get; init; }
    /// <summary>How the result was accepted: accepted, verified or spot_checked (<see cref="JobReasons"/>). Null from older schedulers.</summary>
    public string? Reason { get; init; }
    /// <summary>The specifics, as a sentence ("2 replicas from different operators agreed...").</summary>
    public string? Detail { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }

    /// <summary>The accepted attempts, falling back to the top-level one for messages that predate <see cref="Accepted"/>.</summary>
    public IReadOnlyList<AcceptedAttempt> AcceptedAttempts() => Accepted is { Count: > 0 } accepted ? accepted :
        [new AcceptedAttempt { AttemptId = AttemptId, WorkerId = WorkerId, OperatorAccountId = OperatorAccountId, Metrics = Metrics, Signature = Signature }];
}

/// <summary>One attempt whose result was accepted for a job.</summary>
public sealed record AcceptedAttempt
{
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required AttemptMetrics Metrics { get; init; }
    public string? Signature { get; init; }
    /// <summary>The key the scheduler checked <see cref="Signature"/> against (the worker's registered key), for receipts. Null from older schedulers.</summary>
    public string? PublicKey { get; init; }
    /// <summary>
    /// True for a verification attempt the client did not ask for (a spot check of a single-replica job): the
    /// client pays for the replicas it requested, so this attempt's operator is minted its reward but not paid
    /// a share of the price.
    /// </summary>
    public bool SpotCheck { get; init; }
    /// <summary>
    /// The attempt's joules as the scheduler accepts them for rewards: the worker's figure when it is positive and
    /// plausible against the worker's calibrated power and the wall time the scheduler itself measured; null when
    /// the worker reported none, zero, or an implausible figure. Only a non-null figure can earn the efficiency bonus.
    /// </summary>
    public double? CheckedJoules { get; init; }
    /// <summary>
    /// True when a spot check was due for this result but no other operator's worker could run it: the result is
    /// delivered (and paid) but cannot be verified, so it earns no mint.
    /// </summary>
    public bool MintWithheld { get; init; }
}
