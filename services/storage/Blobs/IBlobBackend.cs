using Platform.Contracts;

namespace Platform.Storage.Blobs;

/// <summary>
/// Where one storage node keeps its copies: a local volume (<see cref="FileSystemBackend"/>) or an
/// S3-compatible bucket (<see cref="S3Backend"/>). A backend only moves bytes; hashing, Merkle proofs and
/// verification live in <see cref="BlobStore"/>, so every backend gets the same guarantees.
/// Copies are immutable: a CID's bytes are only ever written again to repair a corrupt or missing copy.
/// </summary>
public interface IBlobBackend
{
    /// <summary>"filesystem" or "s3", as reported in pin status.</summary>
    string Name { get; }

    /// <summary>The size of this node's copy, or null when it holds none.</summary>
    Task<long?> SizeAsync(Cid cid, CancellationToken ct);

    /// <summary>
    /// Stores the bytes of <paramref name="sourceFile"/> (a complete, fsynced file under the node's
    /// Storage:RootPath, which the caller has verified to hash to <paramref name="cid"/>) and takes the file:
    /// it is moved into place or deleted. Without <paramref name="overwrite"/> an existing copy is kept (same
    /// CID, same bytes); with it an existing copy is replaced, which is how a corrupt copy is repaired.
    /// Atomic: a reader sees the old copy or the new one, never a partial one.
    /// </summary>
    Task StoreAsync(Cid cid, string sourceFile, bool overwrite, CancellationToken ct);

    /// <summary>
    /// A stream of this node's copy starting at <paramref name="offset"/>, of which the caller reads at most
    /// <paramref name="length"/> bytes; unverified; null when the node holds none. It may end early if the
    /// copy is shorter than expected (a damaged copy).
    /// </summary>
    Task<Stream?> OpenReadAsync(Cid cid, long offset, long length, CancellationToken ct);

    /// <summary>Every CID this node holds a copy of, in no particular order.</summary>
    IAsyncEnumerable<Cid> ListAsync(CancellationToken ct);
}
