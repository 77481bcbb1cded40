using System.Reflection;
using MassTransit;
using MassTransit.RabbitMqTransport;
using RabbitMQ.Client.Exceptions;

namespace Platform.Hosting.Messaging;

/// <summary>
/// How soon the bus tries again after a broker operation failed on a lost connection: a send, or a receive endpoint
/// starting again. MassTransit's own schedule for RabbitMQ waits 3 s plus 3 s doubled each time (about 6, 9, 15, 27,
/// then 30 s) and has no setting. In a cluster that schedule turned one dead node into a stall: a send in flight when the
/// node died was retried only ~6 s later, while the outbox relay's batch waited for it (up to its 10 s send timeout) with
/// every message committed after it queued behind, so jobs sat funded but unassigned for 8-10 s after every client had
/// reconnected to a live node (and a second unlucky send doubled that). Here: 0.25, 0.5, 1, 2 and 3 s, then every 5 s
/// for about 17 minutes, with MassTransit's own list of which failures are worth retrying.
/// </summary>
public static class TransportRetry
{
    public static readonly IReadOnlyList<TimeSpan> Intervals =
    [
        .. new[] { 0.25, 0.5, 1, 2, 3 }.Select(TimeSpan.FromSeconds),
        .. Enumerable.Repeat(TimeSpan.FromSeconds(5), 200),
    ];

    public static IRetryPolicy Policy { get; } = Retry.CreatePolicy(x =>
    {
        // The exceptions MassTransit's RabbitMQ host retries (RabbitMqHostConfiguration, 8.5): connection losses and
        // channel-level closes; never a refused login.
        x.Handle<ConnectionException>();
        x.Handle<AlreadyClosedException>();
        x.Handle<EndOfStreamException>();
        x.Handle<OperationInterruptedException>(e => e.ChannelShouldBeClosed());
        x.Handle<NotSupportedException>(e => e.Message.Contains("Pipelining of requests forbidden", StringComparison.Ordinal));
        x.Ignore<AuthenticationFailureException>();
        x.Intervals([.. Intervals]);
    });

    /// <summary>
    /// Puts <see cref="Policy"/> in place of the RabbitMQ host's transport retry policy (receive endpoints use it, and
    /// sends, which default to it). MassTransit sets it in the host configuration's constructor and exposes no setter,
    /// so it is written into the property's backing field; a MassTransit whose host is built differently fails here, at
    /// start, rather than silently keeping the slow schedule (and TransportRetryTests fails on the upgrade).
    /// </summary>
    public static void Install(IRabbitMqBusFactoryConfigurator configurator)
    {
        const BindingFlags instance = BindingFlags.Instance | BindingFlags.NonPublic;
        var host = configurator.GetType().GetField("_hostConfiguration", instance)?.GetValue(configurator);
        var policy = host?.GetType().GetField($"<{nameof(MassTransit.Configuration.IHostConfiguration.ReceiveTransportRetryPolicy)}>k__BackingField", instance);
        if (host is null || policy is null || policy.FieldType != typeof(IRetryPolicy))
            throw new InvalidOperationException($"MassTransit's RabbitMQ bus configurator ({configurator.GetType()}) no longer keeps its host's transport retry policy where {nameof(TransportRetry)} expects it");
        policy.SetValue(host, Policy);
    }
}
