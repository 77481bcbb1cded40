using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Platform.Contracts;

namespace Platform.Storage.Blobs;

/// <summary>
/// Copies as files on this node's volume, at a path derived from the CID, spread over 1024 folders by the
/// CID's last two characters (the first ones are all "bafkrei"). Writes are a rename of a file that is
/// already complete and fsynced, so a copy is never seen half-written.
/// </summary>
public sealed class FileSystemBackend : IBlobBackend
{
    private readonly string _blobs;

    public FileSystemBackend(IOptions<StorageOptions> options)
    {
        _blobs = Path.Combine(Path.GetFullPath(options.Value.RootPath), "blobs");
        Directory.CreateDirectory(_blobs);
    }

    public string Name => "filesystem";

    /// <summary>The file holding a copy; tests use it to damage copies on purpose.</summary>
    public string PathOf(Cid cid) => Path.Combine(_blobs, cid.Value[^2..], cid.Value);

    public Task<long?> SizeAsync(Cid cid, CancellationToken ct)
    {
        var file = new FileInfo(PathOf(cid));
        return Task.FromResult(file.Exists ? file.Length : (long?)null);
    }

    public Task StoreAsync(Cid cid, string sourceFile, bool overwrite, CancellationToken ct)
    {
        var target = PathOf(cid);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        try
        {
            // The source is complete and fsynced, and on the same volume: the rename makes the copy appear whole.
            File.Move(sourceFile, target, overwrite);
        }
        catch (IOException) when (!overwrite && File.Exists(target))
        {
            // Same CID, same bytes: a concurrent store of the same blob got there first.
            File.Delete(sourceFile);
        }
        return Task.CompletedTask;
    }

    public Task<Stream?> OpenReadAsync(Cid cid, long offset, long length, CancellationToken ct)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(PathOf(cid), FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
        stream.Position = Math.Min(offset, stream.Length);
        return Task.FromResult<Stream?>(stream);
    }

    public async IAsyncEnumerable<Cid> ListAsync([EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Yield();
        foreach (var file in Directory.EnumerateFiles(_blobs, "*", SearchOption.AllDirectories))
        {
            ct.ThrowIfCancellationRequested();
            if (Cid.TryParse(Path.GetFileName(file), out var cid))
                yield return cid;
        }
    }
}
