using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;

namespace Platform.Gateway.Forwarding;

/// <summary>The services behind the gateway: each is one YARP cluster, named so.</summary>
public static class Upstream
{
    public const string Storage = "storage";
    public const string Rewards = "rewards";
    public const string Scheduler = "scheduler";
}

/// <summary>
/// YARP's configuration, built from <see cref="UpstreamOptions"/>: one cluster per service, one destination per URL,
/// round-robin, instances probed at /health/ready (active) and left out for a while after a failed request (passive,
/// <see cref="UpstreamFailurePolicy"/>). No YARP routes: the gateway's own endpoints (auth, OpenAPI) forward through
/// <see cref="UpstreamForwarder"/>. Fixed for the process's life, as the settings are.
/// </summary>
public sealed class UpstreamClusters(IOptions<UpstreamOptions> options) : IProxyConfigProvider
{
    private sealed class Config(IReadOnlyList<ClusterConfig> clusters) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes { get; } = [];
        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;
        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(CancellationToken.None);
    }

    private Config? _config;

    public IProxyConfig GetConfig() => _config ??= new Config(
    [
        Cluster(Upstream.Storage, options.Value.Storage),
        Cluster(Upstream.Rewards, options.Value.Rewards),
        Cluster(Upstream.Scheduler, options.Value.Scheduler),
    ]);

    private ClusterConfig Cluster(string service, string urls) => new()
    {
        ClusterId = service,
        LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin,
        Destinations = urls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select((url, i) => (Id: $"{service}-{i + 1}", Config: new DestinationConfig { Address = url }))
            .ToDictionary(d => d.Id, d => d.Config),
        HealthCheck = new HealthCheckConfig
        {
            // When every instance looks down, try them anyway: better a try than a certain 503.
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyOrPanic,
            Active = new ActiveHealthCheckConfig
            {
                Enabled = true,
                Path = "/health/ready",
                Interval = options.Value.HealthCheckInterval,
                Timeout = options.Value.HealthCheckInterval,
                Policy = HealthCheckConstants.ActivePolicy.ConsecutiveFailures,
            },
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = UpstreamFailurePolicy.PolicyName,
                ReactivationPeriod = options.Value.FailureCooldown,
            },
        },
    };
}
