using Microsoft.Extensions.Options;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// The instances of one service behind the gateway, used in turn (round-robin), with passive health checks:
/// an instance that fails a request (unreachable, or 502/503/504) is skipped until its cooldown passes, and
/// the first success brings it back. When every instance is cooling down, the one that failed longest ago is
/// tried anyway: better a try than a certain 503.
/// </summary>
public sealed class UpstreamPool
{
    private readonly Uri[] _instances;
    private readonly long[] _downUntil;
    private readonly TimeSpan _cooldown;
    private readonly TimeProvider _clock;
    private int _next = -1;

    public UpstreamPool(string service, string urls, TimeSpan cooldown, TimeProvider clock)
    {
        Service = service;
        _instances = [.. urls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(u => new Uri(u))];
        _downUntil = new long[_instances.Length];
        _cooldown = cooldown;
        _clock = clock;
    }

    public string Service { get; }

    public IReadOnlyList<Uri> Instances => _instances;

    /// <summary>The next instance to try, healthy ones first.</summary>
    public Uri Next()
    {
        var now = _clock.GetUtcNow().UtcTicks;
        var start = Interlocked.Increment(ref _next) & int.MaxValue;
        var fallback = 0;
        for (var i = 0; i < _instances.Length; i++)
        {
            var candidate = (start + i) % _instances.Length;
            if (Volatile.Read(ref _downUntil[candidate]) <= now)
                return _instances[candidate];
            if (_downUntil[candidate] < _downUntil[fallback])
                fallback = candidate;
        }
        return _instances[fallback];
    }

    public void ReportFailure(Uri instance)
    {
        var index = Array.IndexOf(_instances, instance);
        if (index >= 0)
            Volatile.Write(ref _downUntil[index], (_clock.GetUtcNow() + _cooldown).UtcTicks);
    }

    public void ReportSuccess(Uri instance)
    {
        var index = Array.IndexOf(_instances, instance);
        if (index >= 0 && Volatile.Read(ref _downUntil[index]) != 0)
            Volatile.Write(ref _downUntil[index], 0);
    }
}

/// <summary>The pools of every service behind the gateway, built once from <see cref="UpstreamOptions"/>.</summary>
public sealed class Upstreams(IOptions<UpstreamOptions> options, TimeProvider clock)
{
    public UpstreamPool Storage { get; } = new("storage", options.Value.Storage, options.Value.FailureCooldown, clock);
    public UpstreamPool Rewards { get; } = new("rewards", options.Value.Rewards, options.Value.FailureCooldown, clock);
    public UpstreamPool Scheduler { get; } = new("scheduler", options.Value.Scheduler, options.Value.FailureCooldown, clock);
}
