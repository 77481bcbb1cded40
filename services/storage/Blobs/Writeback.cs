using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Platform.Storage.Blobs;

/// <summary>
/// Asks Linux to start writing a file's new bytes to disk every few MiB while the rest is still arriving
/// (<c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>, which queues the writeback and returns), so the fsync that ends an
/// upload waits for the last few MiB rather than the whole blob. Durability still comes from that fsync; this only
/// moves the disk's work earlier. Elsewhere than Linux, or where the call fails, it does nothing.
/// </summary>
internal sealed partial class Writeback(SafeFileHandle file)
{
    private const long Step = 8 << 20;
    private const uint SyncFileRangeWrite = 2;
    private static bool _missing = !OperatingSystem.IsLinux();
    private bool _failed;
    private long _started;

    /// <summary>The file now holds <paramref name="length"/> bytes: start writing back whole steps of them.</summary>
    public void Written(long length)
    {
        if (_missing || _failed || length - _started < Step)
            return;
        try
        {
            // When the call fails for this file, the rest of the upload is left to the closing fsync.
            if (SyncFileRange(file, _started, length - _started, SyncFileRangeWrite) == 0)
                _started = length;
            else
                _failed = true;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _missing = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle fd, long offset, long nbytes, uint flags);
}
