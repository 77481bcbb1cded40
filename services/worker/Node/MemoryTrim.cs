using System.Runtime;
using Microsoft.Extensions.Options;

namespace Platform.Worker.Node;

/// <summary>
/// Gives memory back to the machine once the node is idle again: a node runs on someone's own computer, and what a large
/// job needed (its inputs, output and the kernels' buffers) should not stay resident until the next one. When no attempt
/// has run for <see cref="WorkerOptions.TrimAfterIdle"/> and the process holds more than
/// <see cref="WorkerOptions.TrimAboveMegabytes"/>, one aggressive, compacting collection returns the free heap to the
/// operating system (and the shared array pools drop what they keep). At most once per idle spell: a busy node never
/// pays for it, and an idle one only once.
/// </summary>
public sealed class MemoryTrim(NodeStatus status, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<MemoryTrim> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        logger.LogInformation("Memory: {Gc} GC{Concurrent}; idle trim {Trim}", GCSettings.IsServerGC ? "server" : "workstation",
            GCSettings.LatencyMode == GCLatencyMode.Batch ? "" : ", concurrent", o.TrimAfterIdle > TimeSpan.Zero ? $"after {o.TrimAfterIdle.TotalSeconds:F0} s above {o.TrimAboveMegabytes} MiB" : "off");
        if (o.TrimAfterIdle <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), clock);
        var idleSince = clock.GetUtcNow();
        var trimmed = false;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = clock.GetUtcNow();
            if (status.ActiveAttempts > 0)
            {
                idleSince = now;
                trimmed = false;
                continue;
            }
            if (trimmed || now - idleSince < o.TrimAfterIdle)
                continue;
            trimmed = true;
            var before = Environment.WorkingSet;
            if (before <= o.TrimAboveMegabytes << 20)
                continue;
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            logger.LogDebug("Idle: memory trimmed from {Before} MiB to {After} MiB", before >> 20, Environment.WorkingSet >> 20);
        }
    }
}
