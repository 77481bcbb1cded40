using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>
/// What the node knows about itself at run time: whether it has registered (its readiness) and the attempts
/// it is running, each with a cancellation source so a cancelled job stops at once.
/// </summary>
public sealed class NodeStatus : IHealthCheck
{
    private const int RememberedCancels = 10_000;
    private readonly ConcurrentDictionary<AttemptId, CancellationTokenSource> _running = new();
    private readonly ConcurrentDictionary<AttemptId, bool> _cancelled = new();

    public AccountId? OperatorAccountId { get; set; }
    private long _ended;

    public int ActiveAttempts => _running.Count;

    /// <summary>Attempts ended since the node started: an attempt may begin and end between two looks at <see cref="ActiveAttempts"/>.</summary>
    public long EndedAttempts => Interlocked.Read(ref _ended);
    public IReadOnlyList<AttemptId> Attempts => [.. _running.Keys];

    /// <summary>Starts tracking an attempt; its token is cancelled by <see cref="Cancel"/> or by <paramref name="consumeToken"/>.</summary>
    public CancellationToken Begin(AttemptId attempt, CancellationToken consumeToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(consumeToken);
        _running[attempt] = source;
        // The cancel may have arrived before the attempt started.
        if (_cancelled.ContainsKey(attempt))
            source.Cancel();
        return source.Token;
    }

    public void End(AttemptId attempt)
    {
        if (_running.TryRemove(attempt, out var source))
        {
            source.Dispose();
            Interlocked.Increment(ref _ended);
        }
    }

    public void Cancel(AttemptId attempt)
    {
        if (_cancelled.Count >= RememberedCancels)
            _cancelled.Clear();
        _cancelled[attempt] = true;
        if (_running.TryGetValue(attempt, out var source))
            source.Cancel();
    }

    public bool WasCancelled(AttemptId attempt) => _cancelled.ContainsKey(attempt);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(OperatorAccountId is null ? HealthCheckResult.Unhealthy("not registered with the network yet") : HealthCheckResult.Healthy());
}
