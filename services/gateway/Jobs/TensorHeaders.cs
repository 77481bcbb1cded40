using Microsoft.Extensions.Caching.Memory;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Gateway.Forwarding;

namespace Platform.Gateway.Jobs;

/// <summary>
/// What submission needs to know of an input blob: its size and its .npy header, or why it is not a usable .npy file.
/// A CID names its bytes and a pin is permanent (storage refuses DELETE), so once read this never changes and is kept
/// without expiry, up to <see cref="MaxEntries"/> CIDs (the least used go first when full). A blob that is not
/// pinned, or a storage failure, is never remembered: it may be pinned, or storage back, a moment later.
/// </summary>
public sealed class TensorHeaders : IDisposable
{
    /// <summary>Enough of a blob to hold any .npy header this platform accepts.</summary>
    public const int HeaderPrefixBytes = 4096;

    /// <summary>A few hundred bytes each: tens of MB at most.</summary>
    public const int MaxEntries = 100_000;

    /// <param name="Info">The tensor's dtype and shape; null when <paramref name="NpyError"/> says why there is none.</param>
    public sealed record Header(long TotalSize, TensorInfo? Info, string? NpyError);

    private readonly MemoryCache cache = new(new MemoryCacheOptions { SizeLimit = MaxEntries });

    /// <summary>The header of the blob <paramref name="cid"/>, or null when storage does not have it pinned.</summary>
    public async Task<Header?> ReadAsync(StorageClient storage, Cid cid, CancellationToken ct)
    {
        if (cache.TryGetValue(cid.Value, out Header? known))
            return known;
        var prefix = await storage.ReadPrefixAsync(cid, HeaderPrefixBytes, ct);
        if (prefix is null)
            return null;
        var header = Npy.TryReadHeader(prefix.Bytes, out var npy, out var npyError)
            ? new Header(prefix.TotalSize, new TensorInfo(npy.DType, npy.Shape), null)
            : new Header(prefix.TotalSize, null, npyError);
        cache.Set(cid.Value, header, new MemoryCacheEntryOptions { Size = 1 });
        return header;
    }

    public void Dispose() => cache.Dispose();
}
