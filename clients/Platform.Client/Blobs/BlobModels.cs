namespace Platform.Client;

/// <summary>A pinned blob: POST /v1/blobs.</summary>
public sealed record PinnedBlob(string Cid, long Size, string Sha256);

/// <summary>What HEAD /v1/blobs/{cid} tells: the blob is pinned, and its size.</summary>
public sealed record BlobHead(string Cid, long Size);

/// <summary>GET /v1/blobs/{cid}/pin.</summary>
/// <param name="Replicas">Nodes holding a verified copy.</param>
public sealed record PinStatus(string Cid, long Size, string Sha256, string? Owner, DateTimeOffset PinnedAt, IReadOnlyList<string> Replicas,
    int ReplicaTarget, IReadOnlyList<BlobCopy> Copies, string? MerkleRoot, int Chunks, DateTimeOffset? LastVerifiedAt);

/// <param name="Status">ok, copying or lost.</param>
public sealed record BlobCopy(string NodeId, string Status, DateTimeOffset VerifiedAt);

/// <summary>GET /v1/blobs/{cid}/proof?chunk=i: an RFC 6962 audit path for one chunk, leaf to root, hex.</summary>
public sealed record ChunkProof(string Cid, long Size, int ChunkSize, int Chunks, int Chunk, string LeafHash, IReadOnlyList<string> Path, string Root, string Algorithm);

/// <summary>POST /v1/datasets and GET /v1/datasets/{cid}: the dataset's id is the CID of its pinned manifest.</summary>
public sealed record Dataset(string Cid, DatasetManifest Manifest, string? Owner, DateTimeOffset CreatedAt);

public sealed record DatasetManifest(string Type, string Name, string Description, string License, IReadOnlyList<DatasetBlob> Blobs, long TotalSize);

public sealed record DatasetBlob(string Cid, long Size);

public sealed record CreateDatasetRequest(string Name, string? Description, string License, IReadOnlyList<string> Blobs);
