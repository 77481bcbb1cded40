using System.Collections.Concurrent;
using MassTransit;

namespace Platform.Scheduler.Leases;

/// <summary>
/// When this scheduler last started listening again: at process start, and whenever a receive endpoint comes
/// back Ready after a fault (the broker connection dropped and recovered). While it was deaf, heartbeats could
/// not arrive, so silence from that time says nothing about the workers; the lease monitor takes no running
/// work until a whole grace period has passed since the latest of these moments.
/// </summary>
public sealed class DeafSpells(TimeProvider clock, ILogger<DeafSpells> logger) : IReceiveEndpointObserver
{
    private readonly ConcurrentDictionary<Uri, DateTimeOffset> _faulted = new();
    private long _listeningSinceTicks = clock.GetUtcNow().UtcTicks;

    /// <summary>The start of the current listening spell: since then heartbeats could reach us.</summary>
    public DateTimeOffset ListeningSince => new(Interlocked.Read(ref _listeningSinceTicks), TimeSpan.Zero);

    /// <summary>Whether any endpoint is faulted now: we may not be hearing heartbeats.</summary>
    public bool Deaf => !_faulted.IsEmpty;

    public Task Ready(ReceiveEndpointReady ready)
    {
        if (_faulted.TryRemove(ready.InputAddress, out var since))
        {
            var now = clock.GetUtcNow();
            Interlocked.Exchange(ref _listeningSinceTicks, now.UtcTicks);
            logger.LogWarning("Receive endpoint {Endpoint} recovered after {Seconds:F1} s; running work is left alone for a grace period from now",
                ready.InputAddress, (now - since).TotalSeconds);
        }
        return Task.CompletedTask;
    }

    public Task Faulted(ReceiveEndpointFaulted faulted)
    {
        if (_faulted.TryAdd(faulted.InputAddress, clock.GetUtcNow()))
            logger.LogWarning("Receive endpoint {Endpoint} faulted ({Error}); running work is left alone until it recovers and a grace period passes",
                faulted.InputAddress, faulted.Exception?.Message);
        return Task.CompletedTask;
    }

    public Task Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;

    public Task Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;
}
