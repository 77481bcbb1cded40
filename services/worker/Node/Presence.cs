using Microsoft.Extensions.Options;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Worker.Compute;

namespace Platform.Worker.Node;

/// <summary>
/// Announces the node (WorkerOnline) under the operator its enrollment named, beats every interval, and says
/// goodbye (WorkerOffline) on a clean shutdown. A beat tells the scheduler the node takes work, so none is sent while
/// the bus's receive endpoints are stranded (<see cref="ReceiveWatchdog.ReceivesNothing"/>).
/// </summary>
public sealed class Presence(NodeIdentity identity, NodeEnrollment enrollment, NodeStatus status, ComputeNode compute, NodeChannel network,
    ReceiveWatchdog receive, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<Presence> logger)
    : BackgroundService
{
    private long _withheld;

    /// <summary>Beats not sent because the node received nothing.</summary>
    public long WithheldBeats => Interlocked.Read(ref _withheld);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The network credits the operator it registered this node under, whatever a message says; the node
        // announces the same one.
        var account = enrollment.OperatorAccountId;
        var o = options.Value;
        // Calibrate before announcing: the scheduler places work by the rates this node reports.
        var capabilities = await compute.CalibrateAsync().WaitAsync(stoppingToken);
        await network.SendAsync(identity.Signed(new WorkerOnline
        {
            WorkerId = identity.WorkerId,
            OperatorAccountId = account,
            Region = o.Region,
            Slots = o.Slots,
            Kernels = [.. capabilities.GflopsPerKernel.Keys],
            Devices = capabilities.Devices,
            GflopsPerKernel = capabilities.GflopsPerKernel,
            BackendPerKernel = capabilities.BackendPerKernel,
            GflopsPerBackend = capabilities.GflopsPerBackend,
            PowerWatts = capabilities.PowerWatts,
            PowerMeasured = capabilities.PowerMeasured,
            Notes = capabilities.Notes,
            // Only when every kernel runs on a backend that passed the start's known-answer check (ArithmeticSelfTest).
            KernelRevision = capabilities.Reproducible ? KernelArithmetic.Current : null,
            PublicKey = identity.PublicKey,
            OccurredAt = clock.GetUtcNow(),
        }), stoppingToken);
        status.OperatorAccountId = account;
        logger.LogInformation("Worker {WorkerId} online for operator {Operator} in region {Region} with {Slots} slot(s)", identity.WorkerId, account, o.Region, o.Slots);

        using var timer = new PeriodicTimer(o.HeartbeatInterval, clock);
        var withholding = false;
        while (await timer.WaitForNextTickAsync(stoppingToken) && !stoppingToken.IsCancellationRequested)
        {
            // MassTransit can reconnect a process for its sends and leave its receive endpoints on the lost connection.
            // Beating then would keep the scheduler giving the node work that waits unread until each attempt's
            // deadline. Silent, the node is taken for lost: it gets no new work, and what it holds goes elsewhere after
            // the scheduler's grace period. It beats again if its endpoints consume again.
            if (receive.ReceivesNothing)
            {
                if (!withholding)
                    logger.LogError("Heartbeats withheld: this node's receive endpoints take in no work (see the receive watchdog's error); "
                        + "the scheduler will take it for lost. Restart the node");
                withholding = true;
                Interlocked.Increment(ref _withheld);
                continue;
            }
            if (withholding)
                logger.LogWarning("Heartbeats resumed: the node's receive endpoints consume again");
            withholding = false;
            try
            {
                // A beat under way when the node stops is finished (it takes milliseconds), not cancelled half sent:
                // MassTransit reports a cancelled send as a fault. A busy broker may confirm late; a beat cut off after
                // one short interval would be logged as a fault and lost, so it gets at least BeatConfirmWindow.
                using var sending = new CancellationTokenSource(o.HeartbeatInterval > BeatConfirmWindow ? o.HeartbeatInterval : BeatConfirmWindow);
                await network.SendAsync(identity.Signed(new WorkerHeartbeat
                {
                    WorkerId = identity.WorkerId,
                    ActiveAttempts = status.ActiveAttempts,
                    Attempts = status.Attempts,
                    OccurredAt = clock.GetUtcNow(),
                }), sending.Token);
            }
            catch (Exception ex)
            {
                logger.LogWarning("Heartbeat not sent: {Message}", ex.Message);
            }
        }
    }

    private static readonly TimeSpan BeatConfirmWindow = TimeSpan.FromSeconds(5);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // The beats end first (a beat under way is finished): one sent after WorkerOffline would tell the scheduler
        // the node is back.
        await base.StopAsync(cancellationToken);
        if (status.OperatorAccountId is not null)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                await network.SendAsync(identity.Signed(new WorkerOffline { WorkerId = identity.WorkerId, OccurredAt = clock.GetUtcNow() }), timeout.Token);
            }
            catch (Exception ex)
            {
                logger.LogWarning("WorkerOffline not sent: {Message}", ex.Message);
            }
        }
    }
}
