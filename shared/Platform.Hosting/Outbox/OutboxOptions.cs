namespace Platform.Hosting.Outbox;

/// <summary>The outbox relay's timing (configuration section <c>Outbox</c>).</summary>
public sealed class OutboxOptions
{
    /// <summary>
    /// How long a row handed to its process's relay at commit is left to that relay before any relay's poll may
    /// send it. Only a process that died (or a broker that refused the send) leaves a row that long; the poll then
    /// sends it with the same MessageId, which consumers deduplicate.
    /// </summary>
    public TimeSpan MemoryClaim { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one batch of sends may wait for the broker before its unconfirmed messages count as failed (and stay
    /// queued). The poll holds its rows' locks while it sends: a send that never returned (seen on a connection to a
    /// RabbitMQ node lost in a partition) held them for good, and every later relay of those rows timed out behind it.
    /// </summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the relay looks for rows nobody handed it (SQL-written rows, rows of a process that died).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long a sent row is kept (for operators and tests reading what a service published) before it is deleted.</summary>
    public TimeSpan SentRetention { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often sent rows past their retention are deleted.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromSeconds(15);
}
