using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>
/// The outcome of fetching one input: a verified local file (and, for a small one, its verified bytes in memory),
/// or why there is none.
/// </summary>
public sealed record CachedInput(string? Path, long Bytes, string? FailureReason = null, string? FailureDetail = null, byte[]? Data = null)
{
    public static CachedInput Fail(string reason, string detail) => new(null, 0, reason, detail);

    /// <summary>The input's bytes, from memory when they are held there.</summary>
    public Stream Open() => Data is { } data ? new MemoryStream(data, writable: false) : File.OpenRead(Path!);
}

/// <summary>
/// Inputs on local disk, named by CID, so repeated jobs on the same dataset download it once. Bounded by
/// bytes with least-recently-used eviction. Every entry is re-hashed against its CID when it is used, not only
/// when it is written: a disk that flips a bit must not make this node compute on wrong data. Small inputs (at most
/// <see cref="SmallInputBytes"/>) are also kept in memory once verified, so the tiny jobs that make up most of a busy
/// network's traffic are neither re-read nor re-hashed for every job.
/// </summary>
public sealed class InputCache
{
    private readonly GatewayClient _gateway;
    private readonly ILogger<InputCache> _logger;
    private readonly string _directory;
    private readonly long _capacity;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (long Bytes, long LastUsed)> _entries = [];
    private readonly Dictionary<string, byte[]> _memory = [];
    private long _memoryBytes;
    private long _clock;

    public const int SmallInputBytes = 64 << 10;
    private const long MemoryCapacity = 64L << 20;

    public InputCache(GatewayClient gateway, IOptions<WorkerOptions> options, ILogger<InputCache> logger)
    {
        _gateway = gateway;
        _logger = logger;
        _directory = options.Value.InputCachePath;
        _capacity = options.Value.InputCacheBytes;
        Directory.CreateDirectory(_directory);
        // What survives a restart counts as used in its original order; half-written downloads are debris.
        foreach (var file in new DirectoryInfo(_directory).EnumerateFiles().OrderBy(f => f.LastWriteTimeUtc))
        {
            if (Cid.TryParse(file.Name, out _))
                _entries[file.Name] = (file.Length, ++_clock);
            else
                file.Delete();
        }
    }

    public long CachedBytes
    {
        get
        {
            lock (_lock)
                return _entries.Values.Sum(e => e.Bytes);
        }
    }

    /// <summary>The verified local copy of <paramref name="cid"/>, downloading it when needed; never more than <paramref name="maxBytes"/>.</summary>
    public async Task<CachedInput> GetAsync(Cid cid, long maxBytes, CancellationToken ct)
    {
        var path = Path.Combine(_directory, cid.Value);
        lock (_lock)
        {
            if (_memory.TryGetValue(cid.Value, out var held) && _entries.ContainsKey(cid.Value))
            {
                if (held.Length > maxBytes)
                    return TooLarge(cid, held.Length, maxBytes);
                _entries[cid.Value] = (held.Length, ++_clock);
                return new CachedInput(path, held.Length, Data: held);
            }
        }
        if (File.Exists(path))
        {
            var length = new FileInfo(path).Length;
            if (length > maxBytes)
                return TooLarge(cid, length, maxBytes);
            if (length <= SmallInputBytes)
            {
                var bytes = await File.ReadAllBytesAsync(path, ct);
                if (Cid.Compute(bytes) == cid)
                {
                    Touch(cid.Value, length, bytes);
                    return new CachedInput(path, length, Data: bytes);
                }
            }
            else if (await HashFileAsync(path, ct) == cid)
            {
                Touch(cid.Value, length);
                return new CachedInput(path, length);
            }
            _logger.LogWarning("Cached input {Cid} no longer matches its CID; downloading it again", cid);
            Forget(cid.Value);
            File.Delete(path);
        }
        return await DownloadAsync(cid, path, maxBytes, ct);
    }

    private async Task<CachedInput> DownloadAsync(Cid cid, string path, long maxBytes, CancellationToken ct)
    {
        using var response = await _gateway.OpenBlobAsync(cid, ct);
        if (response is null)
            return CachedInput.Fail("input_missing", $"input {cid} is not pinned");
        if (response.Content.Headers.ContentLength is long announced && announced > maxBytes)
            return TooLarge(cid, announced, maxBytes);

        var temp = Path.Combine(_directory, $".{cid.Value}.{Guid.NewGuid():N}.part");
        try
        {
            long written = 0;
            // A small body is also kept in memory as it passes, so the first job that uses it reads no file.
            var small = response.Content.Headers.ContentLength is <= SmallInputBytes ? new MemoryStream() : null;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var body = await response.Content.ReadAsStreamAsync(ct))
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await body.ReadAsync(buffer, ct)) > 0)
                {
                    written += read;
                    // A peer that announced no length (or lied) is cut off at the limit, not after the whole body.
                    if (written > maxBytes)
                        return TooLarge(cid, written, maxBytes);
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), ct);
                    if (small is not null && written <= SmallInputBytes)
                        small.Write(buffer, 0, read);
                    else
                        small = null;
                }
            }
            if (Cid.FromSha256(hash.GetHashAndReset()) != cid)
                return CachedInput.Fail("input_corrupt", $"input {cid} arrived with different bytes than its CID names");
            // Same CID, same bytes: when two attempts fetch the same input at once, either rename may win.
            File.Move(temp, path, overwrite: true);
            var data = small?.ToArray();
            Touch(cid.Value, written, data);
            Evict(keep: cid.Value);
            return new CachedInput(path, written, Data: data);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static CachedInput TooLarge(Cid cid, long bytes, long maxBytes) =>
        CachedInput.Fail("input_too_large", $"input {cid} is {bytes:N0} bytes; this worker takes at most {maxBytes:N0} bytes of input per job");

    private static async Task<Cid> HashFileAsync(string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Cid.FromSha256(await SHA256.HashDataAsync(file, ct));
    }

    private void Touch(string name, long bytes, byte[]? data = null)
    {
        lock (_lock)
        {
            _entries[name] = (bytes, ++_clock);
            if (data is not null && !_memory.ContainsKey(name))
            {
                // Held bytes are a copy of verified files, so dropping them all is only a cost, never a loss.
                if (_memoryBytes + data.Length > MemoryCapacity)
                {
                    _memory.Clear();
                    _memoryBytes = 0;
                }
                _memory[name] = data;
                _memoryBytes += data.Length;
            }
        }
    }

    private void Forget(string name)
    {
        lock (_lock)
        {
            _entries.Remove(name);
            if (_memory.Remove(name, out var held))
                _memoryBytes -= held.Length;
        }
    }

    private void Evict(string keep)
    {
        List<string> victims = [];
        lock (_lock)
        {
            var total = _entries.Values.Sum(e => e.Bytes);
            foreach (var (name, entry) in _entries.OrderBy(e => e.Value.LastUsed))
            {
                if (total <= _capacity)
                    break;
                if (name == keep)
                    continue;
                victims.Add(name);
                total -= entry.Bytes;
            }
            foreach (var name in victims)
            {
                _entries.Remove(name);
                if (_memory.Remove(name, out var held))
                    _memoryBytes -= held.Length;
            }
        }
        // Deleting a file another attempt is reading is safe on the platforms workers run on: the reader keeps its handle.
        foreach (var name in victims)
            File.Delete(Path.Combine(_directory, name));
    }
}
