using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Platform.Contracts;

namespace Platform.Storage.Blobs;

public sealed record StoredBlob(Cid Cid, long Size, string Sha256);

public sealed class BlobTooLargeException(long limit) : Exception($"blob is larger than the limit of {limit} bytes")
{
    public long Limit { get; } = limit;
}

/// <summary>
/// Content-addressed files: a blob lives at a path derived from its CID, is written once through a temp
/// file (hashed while streaming, fsynced, renamed atomically) and never changed or deleted.
/// </summary>
public sealed class BlobStore
{
    private const int BufferSize = 1 << 20;
    private readonly string _blobs;
    private readonly string _tmp;
    private readonly ILogger<BlobStore> _logger;

    public BlobStore(IOptions<StorageOptions> options, ILogger<BlobStore> logger)
    {
        var root = Path.GetFullPath(options.Value.RootPath);
        _blobs = Path.Combine(root, "blobs");
        _tmp = Path.Combine(root, "tmp");
        Directory.CreateDirectory(_blobs);
        Directory.CreateDirectory(_tmp);
        _logger = logger;
        // Uploads cut off by a crash leave temp files; nothing else writes there, so they are garbage.
        foreach (var stale in Directory.EnumerateFiles(_tmp))
            File.Delete(stale);
    }

    // Blobs are spread over 1024 folders by the CID's last two characters (the first ones are all "bafkrei").
    private string PathOf(Cid cid) => Path.Combine(_blobs, cid.Value[^2..], cid.Value);

    public bool Exists(Cid cid) => File.Exists(PathOf(cid));

    public async Task<StoredBlob> PutAsync(Stream body, long maxBytes, CancellationToken ct)
    {
        var temp = Path.Combine(_tmp, Guid.NewGuid().ToString("n"));
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long size = 0;
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
            {
                int read;
                while ((read = await body.ReadAsync(buffer.AsMemory(0, BufferSize), ct)) > 0)
                {
                    size += read;
                    if (size > maxBytes)
                        throw new BlobTooLargeException(maxBytes);
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), ct);
                }
                file.Flush(flushToDisk: true);
            }

            var digest = hash.GetHashAndReset();
            var cid = Cid.FromSha256(digest);
            var target = PathOf(cid);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            try
            {
                // Same bytes, same path: if another upload got there first, its file is identical.
                File.Move(temp, target, overwrite: false);
            }
            catch (IOException) when (File.Exists(target))
            {
            }
            return new StoredBlob(cid, size, Convert.ToHexStringLower(digest));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }

    /// <summary>
    /// Opens a blob after re-hashing it against its CID, so corrupt bytes are never served.
    /// Null when absent; throws <see cref="CorruptBlobException"/> when the bytes no longer match.
    /// </summary>
    public async Task<FileStream?> OpenVerifiedAsync(Cid cid, CancellationToken ct)
    {
        var path = PathOf(cid);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }

        try
        {
            var digest = await SHA256.HashDataAsync(stream, ct);
            if (!digest.AsSpan().SequenceEqual(cid.Sha256()))
            {
                _logger.LogError("Blob {Cid} is corrupt on disk: its bytes no longer hash to its CID", cid);
                throw new CorruptBlobException(cid);
            }
            stream.Position = 0;
            return stream;
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }
}

public sealed class CorruptBlobException(Cid cid) : Exception($"blob {cid} failed verification")
{
    public Cid Cid { get; } = cid;
}
