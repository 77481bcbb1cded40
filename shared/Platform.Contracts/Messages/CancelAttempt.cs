namespace Platform.Contracts.Messages;

/// <summary>Command to queue worker-{id}-control: stop this attempt now; its job was cancelled.</summary>
public sealed record CancelAttempt
{
    public required JobId JobId { get; init; }
    public required AttemptId AttemptId { get; init; }
    public required WorkerId WorkerId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
