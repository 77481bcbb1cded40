namespace Platform.Contracts.Api;

/// <summary>POST /v1/blobs: what was pinned.</summary>
public sealed record PinResponse(string Cid, long Size, string Sha256);

/// <param name="Replicas">Nodes holding a verified copy.</param>
/// <param name="Copies">Every node's copy with its state (ok, copying, lost) and when it was last verified.</param>
public sealed record PinStatusResponse(string Cid, long Size, string Sha256, string? Owner, DateTimeOffset PinnedAt, IReadOnlyList<string> Replicas,
    int ReplicaTarget, IReadOnlyList<CopyView> Copies, string? MerkleRoot, int Chunks, DateTimeOffset? LastVerifiedAt);

/// <param name="RepairFailures">Failed repairs of a lost copy in a row (no peer had it intact); 0 for a healthy copy.</param>
/// <param name="RetryAt">When the scrubber next tries to repair a lost copy; each failure doubles the wait.</param>
public sealed record CopyView(string NodeId, string Status, DateTimeOffset VerifiedAt, int RepairFailures, DateTimeOffset? RetryAt);

/// <summary>An RFC 6962 audit path for one chunk: hash the chunk as a leaf, fold in the path, compare with the root.</summary>
public sealed record ProofResponse(string Cid, long Size, int ChunkSize, int Chunks, int Chunk, string LeafHash, IReadOnlyList<string> Path, string Root, string Algorithm);

public sealed record CreateDatasetRequest(string? Name, string? Description, string? License, IReadOnlyList<string>? Blobs);

public sealed record DatasetBlob(string Cid, long Size);

/// <summary>
/// The manifest, exactly as pinned: its bytes are the dataset's identity, so it holds only what describes the
/// data (no times, no owner) and the same dataset described twice gets the same CID.
/// </summary>
public sealed record DatasetManifest(string Type, string Name, string Description, string License, IReadOnlyList<DatasetBlob> Blobs, long TotalSize);

public sealed record DatasetView(string Cid, DatasetManifest Manifest, string? Owner, DateTimeOffset CreatedAt);
