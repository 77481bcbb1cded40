using System.Runtime;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;

namespace Platform.Worker.Node;

/// <summary>
/// Gives memory back to the machine once the node is idle again: a node runs on someone's own computer, and what a large
/// job needed (its inputs, output and the kernels' buffers) should not stay resident until the next one. When no attempt
/// has run for <see cref="WorkerOptions.TrimAfterIdle"/> and the process holds more than
/// <see cref="WorkerOptions.TrimAboveMegabytes"/>, an aggressive, compacting collection (two, around the finalizers)
/// returns the free heap to the operating system (and the shared array pools drop what they keep), and glibc's allocator is asked to do the same
/// with the native heap (<c>malloc_trim</c>: the free memory of its arenas, which the job's threads and the kernels'
/// native buffers grew and which glibc otherwise keeps for the next allocation). At most once per idle spell: a busy
/// node never pays for it, and an idle one only once.
/// </summary>
public sealed partial class MemoryTrim(NodeStatus status, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<MemoryTrim> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        logger.LogInformation("Memory: {Gc} GC{Concurrent}; idle trim {Trim}", GCSettings.IsServerGC ? "server" : "workstation",
            GCSettings.LatencyMode == GCLatencyMode.Batch ? "" : ", concurrent", o.TrimAfterIdle > TimeSpan.Zero ? $"after {o.TrimAfterIdle.TotalSeconds:F0} s above {o.TrimAboveMegabytes} MiB" : "off");
        if (o.TrimAfterIdle <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), clock);
        var spell = new IdleSpell(o.TrimAfterIdle, clock.GetUtcNow());
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!spell.Due(clock.GetUtcNow(), status.ActiveAttempts, status.EndedAttempts))
                continue;
            var before = Environment.WorkingSet;
            if (before <= o.TrimAboveMegabytes << 20)
                continue;
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            // Objects only finalizers still reference (safe handles of native buffers and what they hold) survive one
            // collection: let the finalizers run and collect once more. Once per idle spell, so cheap.
            GC.WaitForPendingFinalizers();
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var native = TrimNativeHeap();
            logger.LogInformation("Idle: memory trimmed from {Before} MiB to {After} MiB (native heap {Native})", before >> 20, Environment.WorkingSet >> 20,
                native ? "trimmed" : "not trimmable here");
        }
    }

    private static bool _noMallocTrim;

    /// <summary>
    /// Returns the allocator's free pages to the operating system: <c>malloc_trim(0)</c> releases the free top of
    /// every glibc arena and, since glibc 2.8, the whole free pages inside them. False where there is no glibc
    /// (musl, macOS, Windows): there the call is skipped from then on.
    /// </summary>
    public static bool TrimNativeHeap()
    {
        if (_noMallocTrim || !OperatingSystem.IsLinux())
            return false;
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _noMallocTrim = true;
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}

/// <summary>
/// When the idle trim is due: <see cref="WorkerOptions.TrimAfterIdle"/> after the node last had work, once per idle
/// spell. Work is an attempt running at a look or one that ended since the last look: a large job can take less than
/// the second between two looks (a 2048x2048 matmul computes in 0.15 s here), and missing it would leave its memory
/// with the node until the next job.
/// </summary>
public sealed class IdleSpell(TimeSpan after, DateTimeOffset start)
{
    private DateTimeOffset _idleSince = start;
    private long _ended;
    private bool _trimmed;

    /// <param name="running">Attempts running now.</param>
    /// <param name="ended">Attempts ended since the node started.</param>
    public bool Due(DateTimeOffset now, int running, long ended)
    {
        if (running > 0 || ended != _ended)
        {
            _idleSince = now;
            _ended = ended;
            _trimmed = false;
            return false;
        }
        if (_trimmed || now - _idleSince < after)
            return false;
        _trimmed = true;
        return true;
    }
}
