using RabbitMQ.Client;

namespace Platform.Hosting.Messaging;

/// <summary>
/// The broker nodes a connection attempt may use: all of them, the first attempt from the first node, a reconnect from
/// the node after the one last offered (the one it had connected to). MassTransit's own cluster resolver
/// (<c>UseCluster</c>) offers one node per attempt, so a process whose reconnect drew the node that had just gone down
/// waited out MassTransit's transport retry (3 s, then 6, 12, ...) before its next attempt tried another node: a
/// process that drew it twice stood still for 20 s with two healthy nodes up. The client tries the nodes an attempt
/// offers in order until one answers, so one dead node costs a refused connect. Installed as the connection factory's
/// <see cref="ConnectionFactory.EndpointResolverFactory"/>, the client's own hook for choosing endpoints.
/// </summary>
public sealed class ClusterEndpointResolver : IEndpointResolver
{
    private readonly AmqpTcpEndpoint[] _nodes;
    private long _attempts = -1;
    private int _lastOffered;

    /// <param name="nodes">Each node as host:port.</param>
    public ClusterEndpointResolver(IReadOnlyList<string> nodes)
    {
        if (nodes.Count == 0)
            throw new ArgumentException("a cluster has at least one node", nameof(nodes));
        _nodes = [.. nodes.Select(AmqpTcpEndpoint.Parse)];
    }

    /// <summary>The TLS options every node's endpoint gets: the connection factory's, as it sets them for its own host.</summary>
    public SslOption? Ssl { get; set; }

    public IEnumerable<AmqpTcpEndpoint> All()
    {
        // A later attempt (a reconnect) starts after the node the last attempt ended on (the one connected to, which is
        // likely the one just lost), so it tries that node last.
        var start = Interlocked.Increment(ref _attempts) == 0 ? 0 : (Volatile.Read(ref _lastOffered) + 1) % _nodes.Length;
        return Offer(start);
    }

    private IEnumerable<AmqpTcpEndpoint> Offer(int start)
    {
        for (var i = 0; i < _nodes.Length; i++)
        {
            var index = (start + i) % _nodes.Length;
            Volatile.Write(ref _lastOffered, index);
            var node = _nodes[index];
            yield return Ssl is { } ssl ? new AmqpTcpEndpoint(node.HostName, node.Port, ssl) : node;
        }
    }
}
