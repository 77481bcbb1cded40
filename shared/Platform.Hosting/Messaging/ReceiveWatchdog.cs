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
    // Endpoints whose last word is Ready, and the connection (by number) that was the newest when they said it. Numbers
    // and a monotonic timestamp, not wall-clock times: a step of the clock (a VM resumed, NTP at boot) must not make a
    // healthy endpoint look older than the connection it consumes on.
    private readonly ConcurrentDictionary<Uri, long> _readyOn = new();
    private long _connections;
    private long _connectingTimestamp;

    /// <summary>How many broker connections the bus has begun to open; 0 before its first.</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>How long ago the bus began its newest connection (monotonic).</summary>
    public TimeSpan SinceConnecting => clock.GetElapsedTime(Interlocked.Read(ref _connectingTimestamp));

    /// <summary>The bus is opening a broker connection: it has none that works (the first, or the last one was lost).</summary>
    public void Connecting()
    {
        // The time before the number: whoever sees the new number sees its time.
        Interlocked.Exchange(ref _connectingTimestamp, clock.GetTimestamp());
        Interlocked.Increment(ref _connections);
    }

    /// <summary>
    /// Receive endpoints that have said nothing since they were Ready on an earlier connection, although the bus began
    /// a new one at least <paramref name="grace"/> ago. An endpoint on a lost connection reports Completed or Faulted
    /// within a second of the loss and Ready again once it consumes on the new one; one that does neither is consuming
    /// from nothing. The bus's own endpoint (<paramref name="busAddress"/>, its replies) is left out: MassTransit moves it
    /// to a new connection without a word to observers.
    /// </summary>
    public IReadOnlyList<Uri> Stranded(TimeSpan grace, Uri busAddress)
    {
        var newest = Connections;
        if (newest == 0 || SinceConnecting < grace)
            return [];
        return [.. _readyOn.Where(e => e.Value < newest && e.Key.AbsolutePath != busAddress.AbsolutePath)
            .Select(e => e.Key).OrderBy(u => u.ToString(), StringComparer.Ordinal)];
    }

    public Task Ready(ReceiveEndpointReady ready)
    {
        _readyOn[ready.InputAddress] = Connections;
        return Task.CompletedTask;
    }

    public Task Faulted(ReceiveEndpointFaulted faulted) => NotReady(faulted.InputAddress);

    public Task Stopping(ReceiveEndpointStopping stopping) => NotReady(stopping.InputAddress);

    public Task Completed(ReceiveEndpointCompleted completed) => NotReady(completed.InputAddress);

    private Task NotReady(Uri address)
    {
        _readyOn.TryRemove(address, out _);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Reports receive endpoints left on a broker connection that is gone (<see cref="ReceiveEndpointStates.Stranded"/> for
/// <see cref="RabbitMqOptions.ReceiveRecovery"/>), as an error naming them, once per connection. Seen when a cluster node
/// was killed under load (once in ten runs of the failover test here, and in CI): a worker's publish was in flight,
/// RabbitMQ.Client threw ObjectDisposedException from the channel's confirm semaphore, and MassTransit closed the
/// connection itself (which took 15 s) without telling its receive endpoints. It connected again for its sends, so the
/// worker's heartbeats went on and the scheduler kept giving it work, but its endpoints never reported anything again
/// and it ran nothing until each attempt's deadline. It only reports (and a worker stops beating while
/// <see cref="ReceivesNothing"/>, so the scheduler takes it for lost): restarting the bus (stop, then start) was tried
/// and taken out, because in a full test run a scheduler's stop hung past 30 s while its database was coming back.
/// </summary>
public sealed class ReceiveWatchdog(IBusControl bus, ReceiveEndpointStates states, IOptions<RabbitMqOptions> options, TimeProvider clock,
    ILogger<ReceiveWatchdog> logger) : BackgroundService
{
    private int _reports;
    private int _checks;
    private long _reported;

    /// <summary>How many times this process reported stranded endpoints.</summary>
    public int Reports => Volatile.Read(ref _reports);

    /// <summary>How many times it has looked.</summary>
    public int Checks => Volatile.Read(ref _checks);

    /// <summary>
    /// Whether some receive endpoint is stranded now (never while the watchdog is off): the process may still send, but
    /// it receives nothing on them. A worker withholds its heartbeats meanwhile (Presence).
    /// </summary>
    public bool ReceivesNothing => options.Value.ReceiveRecovery is var recovery && recovery > TimeSpan.Zero
        && states.Stranded(recovery, bus.Address).Count > 0;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var recovery = options.Value.ReceiveRecovery;
        if (recovery <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Max(recovery.Ticks / 3, TimeSpan.FromMilliseconds(100).Ticks)), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var connection = states.Connections;
            var stranded = states.Stranded(recovery, bus.Address);
            Interlocked.Increment(ref _checks);
            // Once per connection: the endpoints stay stranded until the process is restarted.
            if (stranded.Count == 0 || _reported == connection)
                continue;
            _reported = connection;
            Interlocked.Increment(ref _reports);
            logger.LogError("Receive endpoints {Endpoints} have reported nothing since the bus began a new broker connection {Seconds:F0} s ago: "
                + "they were left on the lost one and consume nothing; restart this process", string.Join(", ", stranded),
                states.SinceConnecting.TotalSeconds);
        }
    }
}
