namespace Platform.Contracts.Messages;

/// <summary>A storage node found its copy of a blob missing or corrupt and replaced it with a verified copy from a peer.</summary>
public sealed record BlobRepaired
{
    public required Cid Cid { get; init; }
    public required string NodeId { get; init; }
    /// <summary>missing or corrupt.</summary>
    public required string Problem { get; init; }
    public required string FromNodeId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
