namespace Platform.Hosting.Messaging;

/// <summary>
/// A broker login given in code: the address and credentials, and a name for MassTransit's own bus queue when the
/// login may only declare names of its own (a node's), and the kind of queue to declare when the network says
/// (null: RabbitMq:QuorumQueues of the configuration).
/// </summary>
public sealed record BrokerLogin(RabbitMqAddress Address, string? BusEndpointQueueName = null, bool? QuorumQueues = null);
