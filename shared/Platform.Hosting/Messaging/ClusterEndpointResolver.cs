using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MassTransit;
using MassTransit.RabbitMqTransport;
using MassTransit.RabbitMqTransport.Configuration;
using RabbitMQ.Client;

namespace Platform.Hosting.Messaging;

/// <summary>
/// The broker nodes a connection attempt may use: all of them, the first attempt from the first node, a reconnect from
/// the node after the one last offered (the one it had connected to).
/// MassTransit's own cluster resolver (<c>UseCluster</c>) offers one node per attempt, so a process whose reconnect drew
/// the node that had just gone down waited out MassTransit's transport retry (3 s, then 6, 12, ...) before its next
/// attempt tried another node: a process that drew it twice stood still for 20 s with two healthy nodes up. The
/// client tries the nodes an attempt offers in order until one answers, so one dead node costs a refused connect.
/// </summary>
public sealed class ClusterEndpointResolver : IRabbitMqEndpointResolver
{
    private readonly (ClusterNode Node, string Address)[] _nodes;
    private readonly RabbitMqHostSettings? _settings;
    private long _attempts = -1;
    private int _lastOffered;

    /// <param name="nodes">Each node as host:port.</param>
    /// <param name="settings">The host's settings, whose TLS options every node's endpoint gets (as MassTransit's do).</param>
    public ClusterEndpointResolver(IReadOnlyList<string> nodes, RabbitMqHostSettings? settings = null)
    {
        if (nodes.Count == 0)
            throw new ArgumentException("a cluster has at least one node", nameof(nodes));
        _nodes = [.. nodes.Select(n => (ClusterNode.Parse(n), n))];
        _settings = settings;
    }

    /// <summary>The node last offered (MassTransit names it in its connection descriptions).</summary>
    public ClusterNode LastHost => _nodes[Volatile.Read(ref _lastOffered)].Node;

    public IEnumerable<AmqpTcpEndpoint> All()
    {
        // The first attempt starts with the first node, as MassTransit's does; a later one (a reconnect) with the node
        // after the one the last attempt ended on (the one connected to, which is likely the one just lost), so it
        // tries that node last.
        var start = Interlocked.Increment(ref _attempts) == 0 ? 0 : (Volatile.Read(ref _lastOffered) + 1) % _nodes.Length;
        return Offer(start);
    }

    private IEnumerable<AmqpTcpEndpoint> Offer(int start)
    {
        for (var i = 0; i < _nodes.Length; i++)
        {
            var index = (start + i) % _nodes.Length;
            Volatile.Write(ref _lastOffered, index);
            // A fresh endpoint with the settings' TLS options as they are now, as MassTransit's resolver makes them.
            var endpoint = AmqpTcpEndpoint.Parse(_nodes[index].Address);
            _settings?.ApplySslOptions(endpoint.Ssl);
            yield return endpoint;
        }
    }
}

/// <summary>
/// A host's settings as MassTransit's configurator made them, with <see cref="ClusterEndpointResolver"/> as the resolver
/// (the configurator's own settings class, the one that could take it, is internal to MassTransit).
/// </summary>
internal sealed class ClusterHostSettings(RabbitMqHostSettings settings, IRabbitMqEndpointResolver resolver) : RabbitMqHostSettings
{
    public IRabbitMqEndpointResolver EndpointResolver => resolver;

    public string Host => settings.Host;
    public int Port => settings.Port;
    public string VirtualHost => settings.VirtualHost;
    public string Username => settings.Username;
    public string Password => settings.Password;
    public TimeSpan Heartbeat => settings.Heartbeat;
    public bool Ssl => settings.Ssl;
    public SslProtocols SslProtocol => settings.SslProtocol;
    public string SslServerName => settings.SslServerName;
    public SslPolicyErrors AcceptablePolicyErrors => settings.AcceptablePolicyErrors;
    public string ClientCertificatePath => settings.ClientCertificatePath;
    public string ClientCertificatePassphrase => settings.ClientCertificatePassphrase;
    public X509Certificate ClientCertificate => settings.ClientCertificate;
    public bool UseClientCertificateAsAuthenticationIdentity => settings.UseClientCertificateAsAuthenticationIdentity;
    public LocalCertificateSelectionCallback CertificateSelectionCallback { get => settings.CertificateSelectionCallback; set => settings.CertificateSelectionCallback = value; }
    public RemoteCertificateValidationCallback CertificateValidationCallback { get => settings.CertificateValidationCallback; set => settings.CertificateValidationCallback = value; }
    public string ClientProvidedName => settings.ClientProvidedName;
    public Uri HostAddress => settings.HostAddress;
    public bool PublisherConfirmation => settings.PublisherConfirmation;
    public ushort RequestedChannelMax => settings.RequestedChannelMax;
    public TimeSpan RequestedConnectionTimeout => settings.RequestedConnectionTimeout;
    public BatchSettings BatchSettings => settings.BatchSettings;
    public TimeSpan ContinuationTimeout => settings.ContinuationTimeout;
    public uint? MaxMessageSize => settings.MaxMessageSize;
    public ICredentialsProvider CredentialsProvider => settings.CredentialsProvider;
    public uint? RequestedFrameMax => settings.RequestedFrameMax;
    public Task Refresh(ConnectionFactory connectionFactory) => settings.Refresh(connectionFactory);
}
