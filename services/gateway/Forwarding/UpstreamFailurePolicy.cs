using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// Passive health: one failed request takes an instance out for the cluster's reactivation period
/// (Upstreams:FailureCooldown). Failed means the instance itself failed: unreachable, the connection broke, no
/// progress within the timeout, or it answered 502/504 (it could not reach what it depends on). A 503 is not a
/// failure: storage answers 503 for one blob it cannot serve just now (a pin under repair) while serving every
/// other blob, so counting it would take healthy instances out. Neither is anything the client caused (a request
/// it cancelled, a body it broke off).
/// </summary>
public sealed class UpstreamFailurePolicy(IDestinationHealthUpdater health) : IPassiveHealthCheckPolicy
{
    public const string PolicyName = "UpstreamFailure";

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        var failed = error is ForwarderError.Request or ForwarderError.RequestTimedOut or ForwarderError.ResponseHeaders
                or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination
            || (error == ForwarderError.None && context.Response.StatusCode is StatusCodes.Status502BadGateway or StatusCodes.Status504GatewayTimeout);
        if (failed)
            health.SetPassive(cluster, destination, DestinationHealth.Unhealthy,
                cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? TimeSpan.FromSeconds(10));
    }
}
