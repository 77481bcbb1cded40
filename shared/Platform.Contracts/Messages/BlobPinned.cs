namespace Platform.Contracts.Messages;

public sealed record BlobPinned
{
    public required Cid Cid { get; init; }
    public required long Size { get; init; }
    public AccountId? Owner { get; init; }
    public required string NodeId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}
