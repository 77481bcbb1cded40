namespace Platform.Contracts.Messages;

public sealed record WorkerHeartbeat
{
    public required WorkerId WorkerId { get; init; }
    public required int ActiveAttempts { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
