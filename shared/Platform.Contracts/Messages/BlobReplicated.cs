namespace Platform.Contracts.Messages;

/// <summary>A storage node now holds a verified copy of a pinned blob.</summary>
public sealed record BlobReplicated
{
    public required Cid Cid { get; init; }
    public required string NodeId { get; init; }
    public required int Replicas { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
