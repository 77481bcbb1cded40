using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
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

/// <summary>
/// Pinned blocks of one size (the socket receives into them, and direct I/O writes from them, without pinning each
/// time), reused once returned; kept free up to a bound, more are left to the GC. Kestrel's pool has 64 KiB blocks;
/// <see cref="DirectIo.Chunks"/> has 1 MiB chunks aligned for direct I/O. A block returned twice goes back once.
/// </summary>
public sealed class LargeBlockPool(int blockSize = LargeBlockPoolFactory.BlockSize, int maxFreeBlocks = LargeBlockPoolFactory.MaxFreeBlocks,
    int alignment = 1) : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Memory<byte>> _free = new();
    private int _freeCount;

    public override int MaxBufferSize => blockSize;

    /// <summary>How many blocks were made (not reused) since the pool was created.</summary>
    public long BlocksMade => Interlocked.Read(ref _blocksMade);

    private long _blocksMade;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, blockSize);
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _freeCount);
        }
        else
        {
            block = NewBlock();
            Interlocked.Increment(ref _blocksMade);
        }
        return new Block(this, block);
    }

    // The block starts at the first aligned address of a pinned array a little longer than it (the pinned heap never
    // moves the array, so the address stays aligned).
    private Memory<byte> NewBlock()
    {
        var array = GC.AllocateUninitializedArray<byte>(blockSize + alignment - 1, pinned: true);
        var address = Marshal.UnsafeAddrOfPinnedArrayElement(array, 0);
        var offset = (int)((alignment - (address % alignment)) % alignment);
        return array.AsMemory(offset, blockSize);
    }

    private void Return(Memory<byte> block)
    {
        if (Interlocked.Increment(ref _freeCount) <= maxFreeBlocks)
            _free.Enqueue(block);
        else
            Interlocked.Decrement(ref _freeCount);
    }

    protected override void Dispose(bool disposing)
    {
        _free.Clear();
        _freeCount = 0;
    }

    private sealed class Block(LargeBlockPool pool, Memory<byte> block) : IMemoryOwner<byte>
    {
        private int _returned;

        public Memory<byte> Memory => Volatile.Read(ref _returned) == 0 ? block : throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0)
                pool.Return(block);
        }
    }
}
