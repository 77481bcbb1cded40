using Microsoft.Extensions.Options;
using Platform.Hosting.Http;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// Forwards the current request to an instance of a service with YARP: the gateway's endpoints (with their
/// authorization and OpenAPI description) call it, and YARP's <see cref="IHttpForwarder"/> streams both bodies
/// (never buffered) with <see cref="ForwardingTransformer"/> on the headers. The instance comes from YARP's state of
/// the cluster (<see cref="UpstreamClusters"/>): its load-balancing policy over the destinations its health checks
/// leave available; the outcome is reported to the cluster's passive health policy. A request without a body that
/// finds an instance unreachable is tried on the next, and so is one with a body as long as none of it was read
/// (a body is streamed once and cannot be resent). What the
/// caller gets when it fails is a problem of ours: 503 <c>upstream-unavailable</c> when no instance could be
/// reached, 504 <c>upstream-timeout</c> when one made no progress within the route's timeout, 408
/// <c>request-body-timeout</c> when the caller's body stopped arriving, 400 <c>request-body-incomplete</c> when it broke off.
/// </summary>
public sealed class UpstreamForwarder(
    IHttpForwarder forwarder,
    IProxyStateLookup proxy,
    IEnumerable<ILoadBalancingPolicy> balancers,
    IEnumerable<IPassiveHealthCheckPolicy> passiveHealth,
    GatewayProof proof,
    IOptions<UpstreamOptions> options,
    ILogger<UpstreamForwarder> logger)
{
    private readonly Dictionary<string, ILoadBalancingPolicy> _balancers = balancers.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, IPassiveHealthCheckPolicy> _passiveHealth = passiveHealth.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Sends the current request to an instance of <paramref name="upstream"/> at <paramref name="path"/> (escaped, as
    /// it goes on the wire; the caller's query string follows it) for <paramref name="account"/> ("" for none), and
    /// streams the answer back. <paramref name="timeout"/> bounds how long the exchange may make no progress (the
    /// configured Upstreams:Timeout when null).
    /// </summary>
    public async Task ForwardAsync(HttpContext http, string upstream, string path, string account, TimeSpan? timeout = null)
    {
        var cluster = Cluster(upstream);
        var request = http.Request;
        // A body is streamed once: an attempt that failed before reading any of it (the instance was unreachable)
        // can go to the next instance; once bytes have gone, it cannot.
        var body = new ReadOnceWatch(request.Body);
        request.Body = body;
        var config = new ForwarderRequestConfig { ActivityTimeout = timeout ?? options.Value.Timeout };
        var transformer = new ForwardingTransformer(path, account, proof);
        var tried = new List<DestinationState>();
        while (Pick(http, cluster, tried) is { } destination)
        {
            tried.Add(destination);
            http.Features.Set<IForwarderErrorFeature>(null);
            var error = await forwarder.SendAsync(http, destination.Model.Config.Address, cluster.Model.HttpClient, config, transformer);
            if (cluster.Model.Config.HealthCheck?.Passive is { Enabled: true, Policy: { } policy })
                _passiveHealth[policy].RequestProxied(http, cluster, destination);

            if (error == ForwarderError.None || http.Response.HasStarted)
                return; // answered, or broken off mid-answer (YARP aborted the response: nothing more can be said)
            if (error is ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled && http.RequestAborted.IsCancellationRequested)
                return; // the caller went away
            // YARP sets 408 when the body stopped arriving: nothing came within the timeout, or too little for
            // Kestrel's minimum data rate. That is no malformed request: the same upload may well succeed again.
            if (error is ForwarderError.RequestBodyClient && http.Response.StatusCode == StatusCodes.Status408RequestTimeout)
            {
                await Problem(http, StatusCodes.Status408RequestTimeout, "request-body-timeout", "Request body too slow",
                    "the request body stopped arriving, or came too slowly, before the gateway's timeout; send it again");
                return;
            }
            if (error is ForwarderError.RequestBodyClient)
            {
                await Problem(http, StatusCodes.Status400BadRequest, "request-body-incomplete", "Request body incomplete",
                    "the request body ended before its declared length or could not be read");
                return;
            }
            if (error is ForwarderError.RequestTimedOut || http.Response.StatusCode == StatusCodes.Status504GatewayTimeout)
            {
                logger.LogWarning("{Service} instance {Instance} made no progress on {Path} within {Timeout}", upstream, destination.Model.Config.Address, path, config.ActivityTimeout);
                await Problem(http, StatusCodes.Status504GatewayTimeout, "upstream-timeout", "Service too slow",
                    $"the {upstream} service did not answer in time; try again shortly");
                return;
            }
            logger.LogWarning("{Service} instance {Instance} failed {Path}: {Error} {Exception}", upstream, destination.Model.Config.Address, path, error,
                http.Features.Get<IForwarderErrorFeature>()?.Exception?.Message);
            if (body.Started)
                break;
            http.Response.Clear();
        }
        await Problem(http, StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Service unavailable",
            $"the {upstream} service is not reachable; try again shortly");
    }

    /// <summary>YARP's state of a service's instances: which exist, which its health checks leave available.</summary>
    public ClusterState Cluster(string upstream) =>
        proxy.TryGetCluster(upstream, out var cluster) ? cluster : throw new InvalidOperationException($"no cluster '{upstream}' (UpstreamClusters builds one per service)");

    /// <summary>The next instance by the cluster's load-balancing policy among the available ones not yet tried.</summary>
    public DestinationState? Pick(HttpContext http, ClusterState cluster, IReadOnlyCollection<DestinationState> tried)
    {
        var candidates = cluster.DestinationsState.AvailableDestinations.Where(d => !tried.Contains(d)).ToList();
        if (candidates.Count == 0)
            return null;
        return _balancers[cluster.Model.Config.LoadBalancingPolicy ?? LoadBalancingPolicies.PowerOfTwoChoices].PickDestination(http, cluster, candidates);
    }

    /// <summary>The caller's request body, noting whether any byte of it was read.</summary>
    private sealed class ReadOnceWatch(Stream inner) : Stream
    {
        public bool Started { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Note(await inner.ReadAsync(buffer, cancellationToken));

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Note(await inner.ReadAsync(buffer.AsMemory(offset, count), cancellationToken));

        public override int Read(byte[] buffer, int offset, int count) => Note(inner.Read(buffer, offset, count));

        private int Note(int read)
        {
            Started |= read > 0;
            return read;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static async Task Problem(HttpContext http, int status, string type, string title, string detail)
    {
        http.Response.Clear();
        await Problems.Create(status, type, title, detail).ExecuteAsync(http);
    }
}
