using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Worker.Compute;

namespace Platform.Worker.Node;

/// <summary>
/// Announces the node (WorkerOnline) once its operator key checks out, beats every interval, and says
/// goodbye (WorkerOffline) on a clean shutdown.
/// </summary>
public sealed class Presence(NodeIdentity identity, NodeStatus status, GatewayClient gateway, ComputeNode compute, IBus bus, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<Presence> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var account = await ResolveOperatorAsync(stoppingToken);
        var o = options.Value;
        // Calibrate before announcing: the scheduler places work by the rates this node reports.
        var capabilities = await compute.CalibrateAsync().WaitAsync(stoppingToken);
        await bus.Publish(identity.Signed(new WorkerOnline
        {
            WorkerId = identity.WorkerId,
            OperatorAccountId = account,
            Region = o.Region,
            Slots = o.Slots,
            Kernels = [.. capabilities.GflopsPerKernel.Keys],
            Devices = capabilities.Devices,
            GflopsPerKernel = capabilities.GflopsPerKernel,
            BackendPerKernel = capabilities.BackendPerKernel,
            PowerWatts = capabilities.PowerWatts,
            PowerMeasured = capabilities.PowerMeasured,
            Notes = capabilities.Notes,
            PublicKey = identity.PublicKey,
            OccurredAt = clock.GetUtcNow(),
        }), stoppingToken);
        status.OperatorAccountId = account;
        logger.LogInformation("Worker {WorkerId} online for operator {Operator} in region {Region} with {Slots} slot(s)", identity.WorkerId, account, o.Region, o.Slots);

        using var timer = new PeriodicTimer(o.HeartbeatInterval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken) && !stoppingToken.IsCancellationRequested)
        {
            try
            {
                await bus.Publish(identity.Signed(new WorkerHeartbeat
                {
                    WorkerId = identity.WorkerId,
                    ActiveAttempts = status.ActiveAttempts,
                    Attempts = status.Attempts,
                    OccurredAt = clock.GetUtcNow(),
                }), stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Heartbeat not sent: {Message}", ex.Message);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (status.OperatorAccountId is not null)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                await bus.Publish(identity.Signed(new WorkerOffline { WorkerId = identity.WorkerId, OccurredAt = clock.GetUtcNow() }), timeout.Token);
            }
            catch (Exception ex)
            {
                logger.LogWarning("WorkerOffline not sent: {Message}", ex.Message);
            }
        }
        await base.StopAsync(cancellationToken);
    }

    private async Task<AccountId> ResolveOperatorAsync(CancellationToken ct)
    {
        while (true)
        {
            try
            {
                var account = await gateway.GetAccountAsync(ct);
                if (account.Role != "operator")
                    throw new InvalidOperationException($"Worker:OperatorKey belongs to a {account.Role} account; workers run under an operator account");
                return AccountId.Parse(account.AccountId);
            }
            catch (HttpRequestException ex)
            {
                // The gateway may start after the worker (compose, ./platform up): keep asking.
                logger.LogWarning("Gateway not reachable yet ({Message}); retrying", ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }
    }
}
