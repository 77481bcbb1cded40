namespace Platform.Contracts.Messages;

/// <summary>Every lifecycle transition the scheduler makes; drives the gateway's job view.</summary>
[Bundled]
public sealed record JobStatusChanged
{
    public required JobId JobId { get; init; }
    public required string Status { get; init; }
    public WorkerId? WorkerId { get; init; }
    public AttemptId? AttemptId { get; init; }
    /// <summary>
    /// What became of the attempt named (assigned, running, submitted, accepted, rejected, failed, cancelled);
    /// null lets the reader derive it from the job's status.
    /// </summary>
    public string? AttemptStatus { get; init; }
    /// <summary>Why: a code of <see cref="JobReasons"/>. Every terminal status has one, and so does an ended attempt.</summary>
    public string? Reason { get; init; }
    /// <summary>The specifics: a sentence (or, from workers, a short technical note) that <see cref="JobReasons.Message"/> completes.</summary>
    public string? Detail { get; init; }
    /// <summary>
    /// Why the attempt named ended, when that differs from the job's reason (a job that fails with
    /// attempts_exhausted names its last attempt, which ended as, say, worker_lost). Null: the job's reason.
    /// </summary>
    public string? AttemptReason { get; init; }
    public string? AttemptDetail { get; init; }
    /// <summary>
    /// The job's n-th status change at the scheduler (1-based, no gaps), so a reader can order a job's changes
    /// as they happened whatever order the broker delivers them in. Null from schedulers that predate it.
    /// </summary>
    public int? Version { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
