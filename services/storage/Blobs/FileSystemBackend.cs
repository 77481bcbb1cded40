using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Platform.Contracts;

namespace Platform.Storage.Blobs;

/// <summary>
/// Copies as files on this node's volume, at a path derived from the CID, spread over 1024 folders by the
/// CID's last two characters (the first ones are all "bafkrei"). Writes are a rename of a file that is
/// already complete and fsynced, so a copy is never seen half-written.
/// </summary>
public sealed partial class FileSystemBackend : IBlobBackend
{
    private readonly string _blobs;
    private readonly string _tmp;

    public FileSystemBackend(IOptions<StorageOptions> options)
    {
        var root = Path.GetFullPath(options.Value.RootPath);
        _blobs = Path.Combine(root, "blobs");
        // The uploads' folder (BlobStore's, emptied when the service starts), on the same volume.
        _tmp = Path.Combine(root, "tmp");
        Directory.CreateDirectory(_blobs);
        Directory.CreateDirectory(_tmp);
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
        var replaced = overwrite ? KeepAside(target) : null;
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
        finally
        {
            // The old copy's second name goes whether the rename replaced it or failed.
            if (replaced is not null)
                DeleteReplaced(replaced);
        }
        return Task.CompletedTask;
    }

    /// <summary>Deletes a replaced copy's second name, in the background; tests swap it to see what was set aside.</summary>
    internal Action<string> DeleteReplaced { get; set; } = path => _ = Task.Run(() => DeleteQuietly(path), CancellationToken.None);

    // Replacing a copy frees its blocks, which for a large copy takes the file system a while inside the rename (about
    // 0.4 s for 1 GiB here, on the uploader's time). A second name for the old copy, taken first, keeps the rename quick;
    // the old copy is then deleted off the request's path. Null when there is no old copy (or no link(2)).
    internal string? KeepAside(string target)
    {
        if (!OperatingSystem.IsLinux())
            return null;
        var aside = Path.Combine(_tmp, "replaced-" + Guid.NewGuid().ToString("n"));
        try
        {
            return Link(target, aside) == 0 ? aside : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    private static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left in the uploads' folder, which is emptied when the service next starts.
        }
    }

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Link(string existing, string newName);

    /// <summary>
    /// The copy opened for direct reads (<see cref="DirectIo"/>): positional reads of whole blocks into aligned buffers only.
    /// Null when there is no copy or its file system refuses direct I/O; the caller then reads through <see cref="OpenReadAsync"/>.
    /// </summary>
    public SafeFileHandle? OpenDirect(Cid cid)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(PathOf(cid), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        if (DirectIo.TryEnable(file))
            return file;
        file.Dispose();
        return null;
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
