using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>What the node knows about itself at run time; ready once it has registered with the network.</summary>
public sealed class NodeStatus : IHealthCheck
{
    private int _active;
    public AccountId? OperatorAccountId { get; set; }
    public int ActiveAttempts => Volatile.Read(ref _active);
    public void AttemptStarted() => Interlocked.Increment(ref _active);
    public void AttemptEnded() => Interlocked.Decrement(ref _active);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(OperatorAccountId is null ? HealthCheckResult.Unhealthy("not registered with the network yet") : HealthCheckResult.Healthy());
}
