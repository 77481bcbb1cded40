using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace Platform.Storage.Blobs;

public static class UploadReceiving
{
    /// <summary>
    /// Kestrel set up for large uploads: it receives straight into a block (rather than first waiting for data with an
    /// empty read), in 64 KiB blocks (<see cref="LargeBlockPool"/>), and 8 MiB of body may wait in memory while a chunk
    /// is hashed, so the socket keeps being read meanwhile (1 MiB, the default, is one chunk). bench/README.md has the
    /// profile.
    /// </summary>
    public static IWebHostBuilder ReceiveUploadsInLargeBlocks(this IWebHostBuilder host)
    {
        host.UseSockets(o => o.WaitForDataBeforeAllocatingBuffer = false);
        host.ConfigureKestrel(k => k.Limits.MaxRequestBufferSize = 8 << 20);
        // Registered after the web host's own (TryAdd) default, so Kestrel's transport gets this one.
        host.ConfigureServices(services => services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockPoolFactory>());
        return host;
    }
}

/// <summary>
/// Kestrel's memory pool for this service, with 64 KiB blocks instead of Kestrel's 4 KiB ones. Kestrel receives a
/// request body one block at a time, so a 1 GiB upload took about 262,000 receive calls, each a system call and a hand
/// over through the connection's pipe; with 64 KiB blocks it takes about 16,000. Responses are written from the same
/// blocks. Free blocks are kept up to <see cref="MaxFreeBlocks"/> (16 MiB); more are left to the GC.
/// </summary>
public sealed class LargeBlockPoolFactory : IMemoryPoolFactory<byte>
{
    public const int BlockSize = 64 * 1024;

    public const int MaxFreeBlocks = 256;

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockPool();
}

/// <summary>Pinned 64 KiB blocks (the socket receives into them without pinning each time), reused once returned.</summary>
public sealed class LargeBlockPool : MemoryPool<byte>
{
    private readonly ConcurrentQueue<byte[]> _free = new();
    private int _freeCount;

    public override int MaxBufferSize => LargeBlockPoolFactory.BlockSize;

    /// <summary>How many blocks were made (not reused) since the pool was created.</summary>
    public long BlocksMade => Interlocked.Read(ref _blocksMade);

    private long _blocksMade;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, LargeBlockPoolFactory.BlockSize);
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _freeCount);
        }
        else
        {
            block = GC.AllocateUninitializedArray<byte>(LargeBlockPoolFactory.BlockSize, pinned: true);
            Interlocked.Increment(ref _blocksMade);
        }
        return new Block(this, block);
    }

    private void Return(byte[] block)
    {
        if (Interlocked.Increment(ref _freeCount) <= LargeBlockPoolFactory.MaxFreeBlocks)
            _free.Enqueue(block);
        else
            Interlocked.Decrement(ref _freeCount);
    }

    protected override void Dispose(bool disposing)
    {
        _free.Clear();
        _freeCount = 0;
    }

    private sealed class Block(LargeBlockPool pool, byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } returned)
                pool.Return(returned);
        }
    }
}
