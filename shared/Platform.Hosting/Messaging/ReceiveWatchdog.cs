using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.Hosting.Messaging;

/// <summary>
/// What the bus's receive endpoints last said, and when the bus last opened a broker connection: enough to tell a
/// receive endpoint left on a connection that is gone (<see cref="Stranded"/>). Fed by MassTransit's endpoint events and
/// by the connection factory's refresh, which MassTransit runs before every connection it opens.
/// </summary>
public sealed class ReceiveEndpointStates(TimeProvider clock) : IReceiveEndpointObserver
{
    // Endpoints whose last word is Ready, and when they said it.
    private readonly ConcurrentDictionary<Uri, DateTimeOffset> _readySince = new();
    private long _connectingTicks;

    /// <summary>When the bus last began to open a broker connection; null before its first.</summary>
    public DateTimeOffset? ConnectingAt => Interlocked.Read(ref _connectingTicks) is var ticks and > 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>The bus is opening a broker connection: it has none that works (the first, or the last one was lost).</summary>
    public void Connecting() => Interlocked.Exchange(ref _connectingTicks, clock.GetUtcNow().UtcTicks);

    /// <summary>
    /// Receive endpoints that have said nothing since they were Ready on an earlier connection, although the bus began
    /// a new one at least <paramref name="grace"/> ago. An endpoint on a lost connection reports Completed or Faulted
    /// within a second of the loss and Ready again once it consumes on the new one; one that does neither is consuming
    /// from nothing. The bus's own endpoint (<paramref name="busAddress"/>, its replies) is left out: MassTransit moves it
    /// to a new connection without a word to observers.
    /// </summary>
    public IReadOnlyList<Uri> Stranded(TimeSpan grace, Uri busAddress)
    {
        if (ConnectingAt is not { } connecting || clock.GetUtcNow() - connecting < grace)
            return [];
        return [.. _readySince.Where(e => e.Value < connecting && e.Key.AbsolutePath != busAddress.AbsolutePath)
            .Select(e => e.Key).OrderBy(u => u.ToString(), StringComparer.Ordinal)];
    }

    public Task Ready(ReceiveEndpointReady ready)
    {
        _readySince[ready.InputAddress] = clock.GetUtcNow();
        return Task.CompletedTask;
    }

    public Task Faulted(ReceiveEndpointFaulted faulted) => NotReady(faulted.InputAddress);

    public Task Stopping(ReceiveEndpointStopping stopping) => NotReady(stopping.InputAddress);

    public Task Completed(ReceiveEndpointCompleted completed) => NotReady(completed.InputAddress);

    private Task NotReady(Uri address)
    {
        _readySince.TryRemove(address, out _);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Restarts the bus when its receive endpoints were left on a broker connection that is gone
/// (<see cref="ReceiveEndpointStates.Stranded"/> for <see cref="RabbitMqOptions.ReceiveRecovery"/>). Seen when a cluster
/// node was killed under load, in about one run of the failover test in three: a worker's publish was in flight,
/// RabbitMQ.Client threw ObjectDisposedException from the channel's confirm semaphore, and MassTransit closed the
/// connection itself (which took 15 s) without telling its receive endpoints. It connected again for its sends, so the
/// worker's heartbeats went on and the scheduler kept giving it work, but its endpoints never reported anything again
/// and it ran nothing until each attempt's deadline. A stopped and started bus consumes on the new connection.
/// </summary>
public sealed class ReceiveWatchdog(IBusControl bus, ReceiveEndpointStates states, IOptions<RabbitMqOptions> options, TimeProvider clock,
    ILogger<ReceiveWatchdog> logger) : BackgroundService
{
    private int _restarts;
    private int _checks;

    /// <summary>How many times this process restarted its bus.</summary>
    public int Restarts => Volatile.Read(ref _restarts);

    /// <summary>How many times it has looked.</summary>
    public int Checks => Volatile.Read(ref _checks);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var recovery = options.Value.ReceiveRecovery;
        if (recovery <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(recovery / 3, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var stranded = states.Stranded(recovery, bus.Address);
            Interlocked.Increment(ref _checks);
            if (stranded.Count == 0)
                continue;
            logger.LogWarning("Receive endpoints {Endpoints} have reported nothing since the bus began a new broker connection {Seconds:F0} s ago: "
                + "they were left on the lost one; restarting the bus", string.Join(", ", stranded), (clock.GetUtcNow() - states.ConnectingAt!.Value).TotalSeconds);
            await RestartAsync(stoppingToken);
        }
    }

    private async Task RestartAsync(CancellationToken ct)
    {
        Interlocked.Increment(ref _restarts);
        // Stopping cancels consumers on channels of the lost connection, which may answer late or never.
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            stop.CancelAfter(options.Value.ReceiveRecovery);
            try
            {
                await bus.StopAsync(stop.Token);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning(ex, "The bus did not stop cleanly; starting it anyway");
            }
        }
        try
        {
            await bus.StartAsync(ct);
            logger.LogWarning("Bus restarted");
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            // MassTransit keeps trying to connect; the next check looks again.
            logger.LogError(ex, "The bus did not start again");
        }
    }
}
