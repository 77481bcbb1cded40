namespace Platform.Contracts.Api;

/// <summary>
/// <c>POST /v1/nodes</c>, made with the operator's API key: registers a node's identity key under the operator
/// and gets the node its own broker login. <see cref="Signature"/> is the node key's signature over
/// <see cref="Signing.NodeEnrollmentSignature.Payload"/> (proof of possession). <see cref="WorkerId"/> is the id
/// the node keeps in its data directory; a worker id, once registered, keeps its key and its operator.
/// </summary>
public sealed record NodeEnrollmentRequest(string? WorkerId, string? PublicKey, string? Signature);

/// <summary>
/// What a registered node may use: its id, the operator the network will credit (from the API key, never from
/// the node), and a broker login that can do nothing but the node's own work. The password is shown on every
/// enrollment and replaced by the next one.
/// </summary>
public sealed record NodeEnrollmentResponse(string WorkerId, string OperatorAccountId, string PublicKey, NodeBrokerLogin Broker);

/// <summary>
/// The node's broker login: it may declare and consume its own queues (<see cref="AssignmentQueue"/>,
/// <see cref="ControlQueue"/>) and send only to its own <see cref="Exchange"/>, which the network binds to the
/// scheduler's node intake. Everything else is refused by the broker. <see cref="Nodes"/> lists every broker node
/// (<c>host:port</c>; a cluster's several, <see cref="Host"/>:<see cref="Port"/> first) and <see cref="QuorumQueues"/>
/// says which kind of queue the network declares, which the node's own queues must be too (absent from an older
/// scheduler: the node's own RabbitMq:QuorumQueues then decides).
/// </summary>
public sealed record NodeBrokerLogin(string Host, int Port, string VirtualHost, string Username, string Password,
    string Exchange, string AssignmentQueue, string ControlQueue, IReadOnlyList<string>? Nodes = null, bool? QuorumQueues = null);
