namespace Platform.Hosting.Messaging;

/// <summary>How the service's queues are declared on the broker.</summary>
public sealed class RabbitMqOptions
{
    public const string SectionName = "RabbitMq";

    /// <summary>
    /// Declare every receive endpoint as a quorum queue (replicated by Raft across a RabbitMQ cluster's nodes)
    /// instead of a classic durable queue. Off by default; turn it on (RabbitMq__QuorumQueues=true) for a
    /// cluster, on every service at once. RabbitMQ cannot change an existing queue's type: delete the service's
    /// queues (drained) before switching, or the declaration fails.
    /// </summary>
    public bool QuorumQueues { get; set; }
}
