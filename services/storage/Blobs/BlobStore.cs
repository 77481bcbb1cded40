using System.Buffers;
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Platform.Contracts;
using Platform.Contracts.Merkle;

namespace Platform.Storage.Blobs;

/// <summary>A blob as stored: its CID, size, SHA-256 and Merkle tree (leaf hashes concatenated, and the root).</summary>
public sealed record StoredBlob(Cid Cid, long Size, string Sha256, byte[] Leaves, byte[] Root);

public sealed class BlobTooLargeException(long limit) : Exception($"blob is larger than the limit of {limit} bytes")
{
    public long Limit { get; } = limit;
}

public sealed class CorruptBlobException(Cid cid, string detail) : Exception($"blob {cid}: {detail}")
{
    public Cid Cid { get; } = cid;
}

/// <summary>An upload hashed and fsynced to a temp file, not yet stored; disposing it removes the temp file.</summary>
public sealed class ReceivedBlob(StoredBlob blob, string tempPath, bool writtenDirectly) : IDisposable
{
    public StoredBlob Blob { get; } = blob;

    public string TempPath { get; } = tempPath;

    /// <summary>Whether the temp file was written with direct I/O (<see cref="DirectIo"/>) or through the page cache.</summary>
    public bool WrittenDirectly { get; } = writtenDirectly;

    public void Dispose() => File.Delete(TempPath);
}

/// <summary>What a check of this node's copy found.</summary>
public enum CopyState
{
    Ok,
    Missing,
    Corrupt,
}

/// <summary>
/// Hashing, Merkle trees and verification over whichever <see cref="IBlobBackend"/> holds the copies.
/// Writes go through a temp file on the node's volume (hashed while streaming, fsynced) and only then to the
/// backend, so a cut upload stores nothing. Reads check every 1 MiB chunk against its leaf hash before a byte
/// of it is sent, so corrupt bytes are never served, in one pass over the data.
/// </summary>
public sealed class BlobStore
{
    private const int LeafSize = 32;
    private readonly string _tmp;
    private readonly bool _directIo;
    private readonly long _directReadMinBytes;

    public BlobStore(IBlobBackend backend, IOptions<StorageOptions> options)
    {
        Backend = backend;
        _tmp = Path.Combine(Path.GetFullPath(options.Value.RootPath), "tmp");
        Directory.CreateDirectory(_tmp);
        // Uploads cut off by a crash, and replaced copies' second names not yet deleted, are all that is ever here.
        foreach (var stale in Directory.EnumerateFiles(_tmp))
            File.Delete(stale);
        // Only where copies stay on this volume: an S3 upload reads the temp file again, better from the page cache.
        // The probe catches a file system that takes O_DIRECT but not writes aligned to 4 KiB.
        _directIo = options.Value.DirectIo && backend.Name == "filesystem" && DirectIo.WritesWork(_tmp);
        _directReadMinBytes = options.Value.DirectReadMinBytes;
    }

    public IBlobBackend Backend { get; }

    /// <summary>Streams an upload to the backend; its CID is whatever its bytes hash to.</summary>
    public async Task<StoredBlob> PutAsync(Stream body, long maxBytes, CancellationToken ct)
    {
        using var received = await ReceiveAsync(body, maxBytes, expected: null, ct);
        await CommitAsync(received, overwrite: false, ct);
        return received.Blob;
    }

    /// <summary>Stores a copy fetched from a peer, refusing bytes that do not hash to <paramref name="expected"/>.</summary>
    public async Task<StoredBlob> PutCopyAsync(Cid expected, Stream body, long maxBytes, bool overwrite, CancellationToken ct)
    {
        using var received = await ReceiveAsync(body, maxBytes, expected, ct);
        await CommitAsync(received, overwrite, ct);
        return received.Blob;
    }

    /// <summary>
    /// Streams a body into a temp file on this node's volume, hashing it and building its Merkle tree on the
    /// way, and fsyncs it. Nothing is stored yet: <see cref="CommitAsync"/> does that, so a caller can first
    /// decide whether it should be (the pin fee). Disposing the result removes the temp file.
    /// </summary>
    /// <remarks>
    /// A pipeline, so no stage waits for another: one task reads the body into whole chunks up to
    /// <see cref="ChunksAhead"/> ahead, while the chunk in hand is hashed twice at once (the CID's hash here, its leaf
    /// on another core) and the chunks before it are written, <see cref="WriteBatch"/> to a write. Writes go straight
    /// to the disk (<see cref="DirectIo"/>) where the file system allows; where it does not, Linux is asked to start
    /// writing each batch back as soon as it is written, so the closing fsync finds little left to do. Every byte is
    /// still hashed twice; the reads, the hashes and the disk overlap instead of taking turns.
    /// </remarks>
    public async Task<ReceivedBlob> ReceiveAsync(Stream body, long maxBytes, Cid? expected, CancellationToken ct)
    {
        var temp = Path.Combine(_tmp, Guid.NewGuid().ToString("n"));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var chunks = Channel.CreateBounded<(IMemoryOwner<byte> Buffer, int Filled)>(new BoundedChannelOptions(ChunksAhead) { SingleReader = true, SingleWriter = true });
        var reading = ReadChunksAsync(body, maxBytes, chunks.Writer, stop.Token);
        try
        {
            using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var leaves = new MemoryStream();
            long size = 0;
            var direct = false;
            using (var file = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
            {
                direct = _directIo && DirectIo.TryEnable(file);
                var writeback = direct ? null : new Writeback(file);
                // The CID's hash takes the chunks in order, one after another, beside everything else.
                var hashing = Task.CompletedTask;
                // Chunks waiting for the batch that writes them, and chunks being written, oldest first; a chunk's buffer
                // goes back once its write and both its hashes have ended.
                var batch = new List<ReceivedChunk>(WriteBatch);
                var inFlight = new Queue<(ReceivedChunk Chunk, Task Write)>();
                try
                {
                    await foreach (var (buffer, filled) in chunks.Reader.ReadAllAsync(stop.Token))
                    {
                        var bytes = buffer.Memory[..filled];
                        // A direct write is whole blocks: the last chunk's is padded with zeros and the file cut to size after.
                        var written = direct ? buffer.Memory[..DirectIo.Padded(filled)] : bytes;
                        written.Span[filled..].Clear();
                        var leaf = Task.Run(() => MerkleTree.LeafHash(bytes.Span), stop.Token);
                        // Not cancellable: a cancelled link would let the next chunk's hash start before this one ended.
                        hashing = hashing.ContinueWith(_ => whole.AppendData(bytes.Span), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                        batch.Add(new ReceivedChunk(buffer, written, size, size + filled, Task.WhenAll(leaf, hashing), leaf));
                        size += filled;
                        if (batch.Count == WriteBatch)
                            StartWrite();
                        while (inFlight.Count > WriteBatch)
                            await FinishOldestAsync();
                    }
                    StartWrite();
                    while (inFlight.Count > 0)
                        await FinishOldestAsync();
                    await hashing;
                }
                finally
                {
                    // On a failure, what is still running ends before its buffer is handed back.
                    foreach (var chunk in batch)
                        await EndAsync(chunk.Hashed, chunk.Buffer);
                    foreach (var (chunk, write) in inFlight)
                        await EndAsync(Task.WhenAll(write, chunk.Hashed), chunk.Buffer);
                }
                // The reader's own failure (too large, a cut upload) ends the chunks early; it is the one to report.
                await reading;
                if (direct && size % DirectIo.Alignment != 0)
                    RandomAccess.SetLength(file, size);
                RandomAccess.FlushToDisk(file);

                // One write for the batch's chunks (they follow each other in the file): fewer, larger writes keep a
                // busy machine's disk fed better than one per chunk.
                void StartWrite()
                {
                    if (batch.Count == 0)
                        return;
                    var write = RandomAccess.WriteAsync(file, batch.ConvertAll(c => c.Written), batch[0].Start, stop.Token).AsTask();
                    foreach (var chunk in batch)
                        inFlight.Enqueue((chunk, write));
                    batch.Clear();
                }

                async Task FinishOldestAsync()
                {
                    var (chunk, write) = inFlight.Peek();
                    await write;
                    await chunk.Hashed;
                    leaves.Write(await chunk.Leaf);
                    inFlight.Dequeue();
                    chunk.Buffer.Dispose();
                    writeback?.Written(chunk.End);
                }
            }

            var digest = whole.GetHashAndReset();
            var cid = Cid.FromSha256(digest);
            if (expected is { } wanted && wanted != cid)
                throw new CorruptBlobException(wanted, $"the copy received hashes to {cid}");
            var leafHashes = leaves.ToArray();
            return new ReceivedBlob(new StoredBlob(cid, size, Convert.ToHexStringLower(digest), leafHashes, MerkleTree.Root(Split(leafHashes))), temp, direct);
        }
        catch
        {
            await StopReaderAsync(stop, reading, chunks.Reader, c => c.Buffer);
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>How many 1 MiB chunks of an upload or a read may wait, read but not yet hashed.</summary>
    private const int ChunksAhead = 4;

    /// <summary>How many chunks of an upload one write takes (4 MiB); at most two batches are written at once, behind the hashes.</summary>
    private const int WriteBatch = 4;

    /// <summary>
    /// A chunk of an upload: its buffer, the bytes to write (<see cref="Start"/> to <see cref="End"/> in the file, padded
    /// for a direct write), and its hashing (<see cref="Leaf"/> and its part of the CID's hash, <see cref="Hashed"/>
    /// when both have ended).
    /// </summary>
    private readonly record struct ReceivedChunk(IMemoryOwner<byte> Buffer, ReadOnlyMemory<byte> Written, long Start, long End, Task Hashed, Task<byte[]> Leaf);

    // Waits for a chunk's work to end, whatever its outcome, and hands its buffer back.
    private static async Task EndAsync(Task work, IMemoryOwner<byte> buffer)
    {
        try
        {
            await work;
        }
        catch
        {
            // The failure being reported is elsewhere; this only had to end.
        }
        buffer.Dispose();
    }

    // Fills whole chunks (each leaf is one chunk however the body arrives) and hands them over in order.
    private static async Task ReadChunksAsync(Stream body, long maxBytes, ChannelWriter<(IMemoryOwner<byte> Buffer, int Filled)> chunks, CancellationToken ct)
    {
        try
        {
            long size = 0;
            while (true)
            {
                var buffer = DirectIo.Chunks.Rent();
                int filled;
                try
                {
                    filled = await body.ReadAtLeastAsync(buffer.Memory, MerkleTree.ChunkSize, throwOnEndOfStream: false, ct);
                    size += filled;
                    if (size > maxBytes)
                        throw new BlobTooLargeException(maxBytes);
                    if (filled > 0)
                        await chunks.WriteAsync((buffer, filled), ct);
                }
                catch
                {
                    buffer.Dispose();
                    throw;
                }
                if (filled == 0)
                {
                    buffer.Dispose();
                    break;
                }
                if (filled < MerkleTree.ChunkSize)
                    break;
            }
        }
        finally
        {
            chunks.Complete();
        }
    }

    // After a failure on the consuming side of a pipeline: stops its reader, waits for it to end, and hands back the
    // buffers it had queued.
    private static async Task StopReaderAsync<T>(CancellationTokenSource stop, Task reading, ChannelReader<T> queued, Func<T, IMemoryOwner<byte>> buffer)
    {
        await stop.CancelAsync();
        try
        {
            await reading;
        }
        catch
        {
            // Either the failure in hand, or the reader stopped because of it.
        }
        while (queued.TryRead(out var item))
            buffer(item).Dispose();
    }

    /// <summary>Hands a received blob to the backend (which takes the temp file).</summary>
    public Task CommitAsync(ReceivedBlob received, bool overwrite, CancellationToken ct) =>
        Backend.StoreAsync(received.Blob.Cid, received.TempPath, overwrite, ct);

    /// <summary>
    /// Copies bytes [offset, offset + length) of the blob to <paramref name="output"/>, each chunk verified
    /// against its leaf hash before any of it is written. A chunk this node cannot produce intact (corrupt,
    /// short or missing copy) is asked of <paramref name="fallback"/> (a peer; it returns verified chunk bytes or
    /// null), and <paramref name="damaged"/> is called so the copy gets repaired. Throws
    /// <see cref="CorruptBlobException"/> when no intact chunk can be had: the caller then aborts the response.
    /// </summary>
    public async Task CopyVerifiedAsync(Cid cid, long size, byte[] leaves, long offset, long length, Stream output,
        Func<int, CancellationToken, Task<byte[]?>>? fallback, Action<CopyState>? damaged, CancellationToken ct)
    {
        if (length == 0)
            return;
        var first = (int)(offset / MerkleTree.ChunkSize);
        var last = (int)((offset + length - 1) / MerkleTree.ChunkSize);
        // Three stages, each up to ChunksAhead chunks ahead of the next: the local copy is read, each chunk checked
        // against its leaf, and the checked chunks sent, so the disk, the hash and the network work at once (the hash
        // and the send each take about a core).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var read = Channel.CreateBounded<LocalChunk>(new BoundedChannelOptions(ChunksAhead) { SingleReader = true, SingleWriter = true });
        var checkedChunks = Channel.CreateBounded<LocalChunk>(new BoundedChannelOptions(ChunksAhead) { SingleReader = true, SingleWriter = true });
        var reading = ReadLocalChunksAsync(cid, size, first, last, read.Writer, damaged, stop.Token);
        var checking = Task.Run(() => CheckChunksAsync(size, leaves, read.Reader, checkedChunks.Writer, stop.Token), stop.Token);
        try
        {
            await foreach (var local in checkedChunks.Reader.ReadAllAsync(stop.Token))
            {
                try
                {
                    var index = local.Index;
                    var chunkStart = (long)index * MerkleTree.ChunkSize;
                    var chunkLength = (int)Math.Min(MerkleTree.ChunkSize, size - chunkStart);
                    var leaf = leaves.AsMemory(index * LeafSize, LeafSize);
                    ReadOnlyMemory<byte> chunk;
                    if (local.Intact)
                    {
                        chunk = local.Buffer.Memory[..chunkLength];
                    }
                    else
                    {
                        if (local.FromCopy)
                            damaged?.Invoke(CopyState.Corrupt);
                        var replacement = fallback is null ? null : await fallback(index, ct);
                        if (replacement is null || replacement.Length != chunkLength || !MerkleTree.LeafHash(replacement).AsSpan().SequenceEqual(leaf.Span))
                            throw new CorruptBlobException(cid, $"chunk {index} is damaged here and no peer had it intact");
                        chunk = replacement;
                    }
                    var from = (int)Math.Max(0, offset - chunkStart);
                    var to = (int)Math.Min(chunkLength, offset + length - chunkStart);
                    await output.WriteAsync(chunk[from..to], ct);
                }
                finally
                {
                    local.Buffer.Dispose();
                }
            }
            await checking;
            await reading;
        }
        catch
        {
            await StopReaderAsync(stop, checking, checkedChunks.Reader, c => c.Buffer);
            await StopReaderAsync(stop, reading, read.Reader, c => c.Buffer);
            throw;
        }
    }

    // The middle stage of CopyVerifiedAsync: marks each chunk read Intact when it is whole and matches its leaf.
    private static async Task CheckChunksAsync(long size, byte[] leaves, ChannelReader<LocalChunk> read, ChannelWriter<LocalChunk> checkedChunks,
        CancellationToken ct)
    {
        try
        {
            await foreach (var local in read.ReadAllAsync(ct))
            {
                var chunkLength = (int)Math.Min(MerkleTree.ChunkSize, size - (long)local.Index * MerkleTree.ChunkSize);
                var intact = local.Read == chunkLength
                    && MerkleTree.LeafHash(local.Buffer.Memory.Span[..chunkLength]).AsSpan().SequenceEqual(leaves.AsSpan(local.Index * LeafSize, LeafSize));
                try
                {
                    await checkedChunks.WriteAsync(local with { Intact = intact }, ct);
                }
                catch
                {
                    local.Buffer.Dispose();
                    throw;
                }
            }
        }
        finally
        {
            checkedChunks.Complete();
        }
    }

    /// <summary>
    /// A chunk as read from this node's copy: <see cref="Read"/> bytes of it (short when the copy is); <see cref="Intact"/>
    /// once checked whole against its leaf.
    /// </summary>
    private readonly record struct LocalChunk(int Index, IMemoryOwner<byte> Buffer, int Read, bool FromCopy, bool Intact = false);

    // Reads chunks first..last of the local copy in order. A missing copy gives empty chunks (each is then asked of a
    // peer); after a short chunk the stream is off track, so it is opened again at the next chunk's start. A long range
    // is read with direct I/O where writes are (StorageOptions.DirectReadMinBytes).
    private async Task ReadLocalChunksAsync(Cid cid, long size, int first, int last, ChannelWriter<LocalChunk> chunks, Action<CopyState>? damaged,
        CancellationToken ct)
    {
        var start = (long)first * MerkleTree.ChunkSize;
        var length = Math.Min(size, (long)(last + 1) * MerkleTree.ChunkSize) - start;
        SafeFileHandle? direct = null;
        Stream? copy = null;
        try
        {
            // Opened inside the try: whatever fails here still completes the channel, so the stages after it end too.
            if (_directIo && length >= _directReadMinBytes && Backend is FileSystemBackend files)
                direct = files.OpenDirect(cid);
            if (direct is null)
            {
                copy = await Backend.OpenReadAsync(cid, start, length, ct);
                if (copy is null)
                    damaged?.Invoke(CopyState.Missing);
            }
            for (var index = first; index <= last; index++)
            {
                var chunkStart = (long)index * MerkleTree.ChunkSize;
                var chunkLength = (int)Math.Min(MerkleTree.ChunkSize, size - chunkStart);
                var buffer = DirectIo.Chunks.Rent();
                try
                {
                    var fromCopy = direct is not null || copy is not null;
                    int read;
                    if (direct is not null)
                    {
                        // Whole blocks at a chunk's offset into an aligned buffer, as direct reads need. A read returns
                        // less than asked only where the file ends (short, or longer than the blob); should one stop at
                        // a block boundary before that, the next read goes on from there.
                        var wanted = DirectIo.Padded(chunkLength);
                        read = 0;
                        int got;
                        do
                        {
                            got = await RandomAccess.ReadAsync(direct, buffer.Memory[read..wanted], chunkStart + read, ct);
                            read += got;
                        }
                        while (got > 0 && read < wanted && read % DirectIo.Alignment == 0);
                        read = Math.Min(chunkLength, read);
                    }
                    else
                    {
                        read = copy is null ? 0 : await copy.ReadAtLeastAsync(buffer.Memory[..chunkLength], chunkLength, throwOnEndOfStream: false, ct);
                        if (copy is not null && read != chunkLength)
                        {
                            await copy.DisposeAsync();
                            copy = await Backend.OpenReadAsync(cid, chunkStart + chunkLength, size - chunkStart - chunkLength, ct);
                        }
                    }
                    await chunks.WriteAsync(new LocalChunk(index, buffer, read, fromCopy), ct);
                }
                catch
                {
                    buffer.Dispose();
                    throw;
                }
            }
        }
        finally
        {
            chunks.Complete();
            direct?.Dispose();
            if (copy is not null)
                await copy.DisposeAsync();
        }
    }

    /// <summary>Re-hashes this node's whole copy against the leaf hashes: what the scrubber runs.</summary>
    public async Task<CopyState> CheckAsync(Cid cid, long size, byte[] leaves, CancellationToken ct)
    {
        var state = CopyState.Ok;
        try
        {
            await CopyVerifiedAsync(cid, size, leaves, 0, size, Stream.Null, fallback: null, damaged: s => state = s, ct);
        }
        catch (CorruptBlobException)
        {
        }
        if (size == 0 && await Backend.SizeAsync(cid, ct) is null)
            return CopyState.Missing;
        return state;
    }

    /// <summary>
    /// The leaf hashes of a copy, computed by reading it: for pins made before Merkle trees were kept. Null
    /// when the copy is missing or does not hash to its CID.
    /// </summary>
    public async Task<byte[]?> ComputeLeavesAsync(Cid cid, CancellationToken ct)
    {
        if (await Backend.SizeAsync(cid, ct) is not long size)
            return null;
        await using var copy = await Backend.OpenReadAsync(cid, 0, size, ct);
        if (copy is null)
            return null;
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var leaves = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(MerkleTree.ChunkSize);
        try
        {
            int filled;
            while ((filled = await copy.ReadAtLeastAsync(buffer.AsMemory(0, MerkleTree.ChunkSize), MerkleTree.ChunkSize, throwOnEndOfStream: false, ct)) > 0)
            {
                whole.AppendData(buffer, 0, filled);
                leaves.Write(MerkleTree.LeafHash(buffer.AsSpan(0, filled)));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Cid.FromSha256(whole.GetHashAndReset()) == cid ? leaves.ToArray() : null;
    }

    /// <summary>The concatenated leaf hashes as a list, for the Merkle functions.</summary>
    public static List<byte[]> Split(byte[] leaves)
    {
        var list = new List<byte[]>(leaves.Length / LeafSize);
        for (var i = 0; i < leaves.Length; i += LeafSize)
            list.Add(leaves[i..(i + LeafSize)]);
        return list;
    }
}
