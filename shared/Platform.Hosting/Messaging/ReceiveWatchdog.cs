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

    /// <summary>The endpoints whose last word is Ready, but for the bus's own (<paramref name="busAddress"/>).</summary>
    public IReadOnlyList<Uri> Ready(Uri busAddress) => [.. _readySince.Keys.Where(u => u.AbsolutePath != busAddress.AbsolutePath)];

    /// <summary>Whether each of <paramref name="endpoints"/> has said Ready since <paramref name="since"/>, and nothing after.</summary>
    public bool AllReadySince(IEnumerable<Uri> endpoints, DateTimeOffset since) =>
        endpoints.All(u => _readySince.TryGetValue(u, out var at) && at >= since);

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
/// node was killed under load (once in ten runs of the failover test here, and in CI): a worker's publish was in flight,
/// RabbitMQ.Client threw ObjectDisposedException from the channel's confirm semaphore, and MassTransit closed the
/// connection itself (which took 15 s) without telling its receive endpoints. It connected again for its sends, so the
/// worker's heartbeats went on and the scheduler kept giving it work, but its endpoints never reported anything again
/// and it ran nothing until each attempt's deadline. A stopped and started bus consumes on the new connection.
/// </summary>
public sealed class ReceiveWatchdog(IBusControl bus, ReceiveEndpointStates states, IOptions<RabbitMqOptions> options, TimeProvider clock,
    IHostApplicationLifetime lifetime, ILogger<ReceiveWatchdog> logger) : BackgroundService
{
    /// <summary>How long a restart may take, stopping and starting until every endpoint is Ready again.</summary>
    public static readonly TimeSpan RestartTimeout = TimeSpan.FromSeconds(30);

    private int _restarts;
    private int _checks;

    /// <summary>How many times this process restarted its bus, each time until its endpoints were Ready again.</summary>
    public int Restarts => Volatile.Read(ref _restarts);

    /// <summary>How many times it has looked.</summary>
    public int Checks => Volatile.Read(ref _checks);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var recovery = options.Value.ReceiveRecovery;
        if (recovery <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Max(recovery.Ticks / 3, TimeSpan.FromMilliseconds(100).Ticks)), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var stranded = states.Stranded(recovery, bus.Address);
            Interlocked.Increment(ref _checks);
            if (stranded.Count == 0)
                continue;
            logger.LogWarning("Receive endpoints {Endpoints} have reported nothing since the bus began a new broker connection {Seconds:F0} s ago: "
                + "they were left on the lost one; restarting the bus", string.Join(", ", stranded), (clock.GetUtcNow() - states.ConnectingAt!.Value).TotalSeconds);
            if (!await RestartAsync(states.Ready(bus.Address), stoppingToken) && !stoppingToken.IsCancellationRequested)
            {
                // A bus that neither stopped nor started within the limit cannot be trusted to consume again: a process
                // started afresh can (compose restarts it; a node's operator runs it under a supervisor).
                logger.LogCritical("The bus did not come back within {Seconds:F0} s of a restart; stopping the process so that it starts afresh",
                    RestartTimeout.TotalSeconds);
                Environment.ExitCode = 1;
                lifetime.StopApplication();
                return;
            }
        }
    }

    /// <summary>Stops and starts the bus; true once each of <paramref name="endpoints"/> has been Ready since.</summary>
    private async Task<bool> RestartAsync(IReadOnlyCollection<Uri> endpoints, CancellationToken ct)
    {
        var began = clock.GetUtcNow();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(RestartTimeout);
        try
        {
            // Stopping cancels consumers on channels of the lost connection, which may answer late. MassTransit gives up
            // quietly when the token fires, and a start after a stop that gave up returns the old handle: so the restart
            // counts only once the endpoints say Ready again.
            await bus.StopAsync(limit.Token);
            ct.ThrowIfCancellationRequested();
            await bus.StartAsync(limit.Token);
            while (!states.AllReadySince(endpoints, began))
                await Task.Delay(TimeSpan.FromMilliseconds(100), clock, limit.Token);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            logger.LogError(ex, "Restarting the bus failed");
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        Interlocked.Increment(ref _restarts);
        logger.LogWarning("Bus restarted: {Count} receive endpoints consuming again after {Seconds:F1} s", endpoints.Count, (clock.GetUtcNow() - began).TotalSeconds);
        return true;
    }
}
