using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Platform.Contracts.Merkle;

namespace Platform.Storage.Blobs;

/// <summary>
/// Direct I/O (Linux's <c>O_DIRECT</c>): an upload's bytes go from its chunk buffers to the disk without being copied
/// into the page cache first. That copy was the largest single cost of a pin after the two hashes (about 1.3 CPU
/// seconds per GiB here, against 0.1-0.2 s written directly; the disk's speed is the same either way). Direct writes
/// need the buffer's address, the file offset and the length to be multiples of the disk's block size: chunks are
/// <see cref="Chunks"/>' blocks, written at chunk offsets, and the last one is padded to a whole block and the file then
/// cut to its size. Elsewhere than Linux on x64 or Arm64, or where the file system refuses it, it is not used.
/// </summary>
public static partial class DirectIo
{
    /// <summary>What buffers, offsets and lengths are aligned to: 4 KiB, a multiple of every disk's logical block.</summary>
    public const int Alignment = 4096;

    /// <summary>
    /// Chunk buffers (<see cref="MerkleTree.ChunkSize"/> bytes, aligned for direct I/O) for uploads and reads: the same few
    /// megabytes reused rather than new memory touched for every chunk; 24 kept free.
    /// </summary>
    public static readonly LargeBlockPool Chunks = new(MerkleTree.ChunkSize, maxFreeBlocks: 24, Alignment);

    private const int GetFlags = 3;
    private const int SetFlags = 4;

    // O_DIRECT's value is not the same on every architecture.
    private static readonly int Flag = !OperatingSystem.IsLinux() ? 0 : RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    /// <summary>Turns direct I/O on for an open file; false (and the file unchanged) where the file system refuses it.</summary>
    public static bool TryEnable(SafeFileHandle file)
    {
        if (Flag == 0)
            return false;
        try
        {
            var flags = Fcntl(file, GetFlags, 0);
            return flags >= 0 && Fcntl(file, SetFlags, flags | Flag) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Whether direct writes work in <paramref name="folder"/>: a probe file is opened there with direct I/O and one
    /// aligned block written to it. Some file systems take the flag but want larger alignment; they fail here, once.
    /// </summary>
    public static bool WritesWork(string folder)
    {
        var probe = Path.Combine(folder, "direct-io-probe-" + Guid.NewGuid().ToString("n"));
        using var block = Chunks.Rent();
        try
        {
            using var file = File.OpenHandle(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            if (!TryEnable(file))
                return false;
            RandomAccess.Write(file, block.Memory.Span[..Alignment], 0);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        finally
        {
            File.Delete(probe);
        }
    }

    /// <summary>The length a direct write of <paramref name="length"/> bytes takes: rounded up to whole blocks.</summary>
    public static int Padded(int length) => (length + Alignment - 1) / Alignment * Alignment;

    // fcntl is variadic in C; with one pointer-sized argument the fixed signature passes it the same way on x64 and Arm64 Linux.
    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeFileHandle fd, int command, nint argument);
}
