namespace Platform.Client;

/// <summary>What HEAD /v1/blobs/{cid} tells (its headers, there is no body): the blob is pinned, and its size.</summary>
public sealed record BlobHead(string Cid, long Size);
