namespace Platform.Hosting.Messaging;

/// <summary>How the service's queues are declared on the broker, and when its bus is reported stranded.</summary>
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

    /// <summary>
    /// How long a receive endpoint may stay silent after the bus began a new broker connection before it is reported
    /// as left on the lost one (<see cref="ReceiveWatchdog"/>, an error in the log); it is checked three times as often.
    /// An endpoint on a lost connection reports within a second of the loss, so this only has to outlast a slow
    /// reconnect. Zero turns the watchdog off.
    /// </summary>
    public TimeSpan ReceiveRecovery { get; set; } = TimeSpan.FromSeconds(15);
}
