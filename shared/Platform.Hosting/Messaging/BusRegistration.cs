using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

using Platform.Hosting.Tracing;

namespace Platform.Hosting.Messaging;

public static class BusRegistration
{
    /// <summary>How often the services and nodes exchange AMQP heartbeats with the broker.</summary>
    public static readonly TimeSpan BrokerHeartbeat = TimeSpan.FromSeconds(5);

    public static IServiceCollection AddPlatformBus(this IServiceCollection services, string service, string? rabbitMqUri, Action<IBusRegistrationConfigurator>? configureBus,
        RabbitMqOptions? options = null)
    {
        if (string.IsNullOrWhiteSpace(rabbitMqUri))
            throw new InvalidOperationException("ConnectionStrings:RabbitMq is not set: give an amqp:// URI, for example amqp://user:password@localhost:5672/");
        var address = RabbitMqAddress.Parse(rabbitMqUri);
        // A service looks after its own dead letters (a node's login may not read its error queue, and a node's
        // dead AssignJob is the scheduler's lease to time out).
        services.AddSingleton<ConsumedQueues>();
        services.AddOptions<DeadLetterOptions>().BindConfiguration(DeadLetterOptions.SectionName);
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<DeadLetterReconciler>(sp, address));
        services.AddHostedService(sp => sp.GetRequiredService<DeadLetterReconciler>());
        return services.AddPlatformBus(service, new BrokerLogin(address), bus =>
        {
            bus.AddReceiveEndpointObserver(sp => sp.GetRequiredService<ConsumedQueues>());
            configureBus?.Invoke(bus);
        }, options);
    }

    /// <summary>The same bus with a login given in code rather than by ConnectionStrings:RabbitMq (a node's, from its enrollment).</summary>
    public static IServiceCollection AddPlatformBus(this IServiceCollection services, string service, BrokerLogin login, Action<IBusRegistrationConfigurator>? configureBus,
        RabbitMqOptions? options = null)
    {
        var broker = login.Address;
        // A node is told by the network which kind its queues must be (the broker refuses to redeclare a queue as the other kind).
        var quorumQueues = login.QuorumQueues ?? options?.QuorumQueues ?? false;

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ReceiveEndpointStates>();
        services.AddMassTransit(x =>
        {
            // Queues are prefixed with the service so two services consuming the same event get a queue each.
            x.SetEndpointNameFormatter(new KebabCaseEndpointNameFormatter(service, includeNamespace: false));
            configureBus?.Invoke(x);
            x.AddReceiveEndpointObserver(sp => sp.GetRequiredService<ReceiveEndpointStates>());
            // MassTransit (8.4+) posts usage telemetry to its authors' host five minutes after start unless told
            // not to. Nothing of an operator's or a client's deployment calls outside without their consent; an
            // owner who wants to share it can still opt in with MASSTRANSIT_USAGE_TELEMETRY=true.
            x.DisableUsageTelemetry();

            x.AddConfigureEndpointsCallback((_, _, endpoint) =>
            {
                // Immediate retries ride out deadlocks and short outages; what still fails lands in the
                // queue's _error queue (delayed redelivery needs a broker plugin stock RabbitMQ lacks).
                endpoint.UseMessageRetry(r => r.Intervals(100, 500, 1000, 2000, 5000));
                // In a cluster, queues replicated across nodes survive the loss of one (RabbitMq:QuorumQueues).
                if (quorumQueues && endpoint is IRabbitMqReceiveEndpointConfigurator rabbit)
                    rabbit.SetQuorumQueue();
            });

            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(broker.Host, broker.Port, broker.VirtualHost, h =>
                {
                    h.Username(broker.Username);
                    h.Password(broker.Password);
                    h.PublisherConfirmation = true;
                    // A node cut off by a partition closes nothing this side can see: the connection only looks alive.
                    // Heartbeats every 5 s find it dead in about 10 (the server's default, 60 s, left the bus using a
                    // connection to a paused node well after the partition had healed).
                    h.Heartbeat(BrokerHeartbeat);
                    // The factory is refreshed before every connection MassTransit opens: the receive watchdog learns of it, and
                    // in a cluster each attempt tries every node until one answers (MassTransit's UseCluster offers one
                    // node per attempt; see ClusterEndpointResolver), the resolver keeping its place across attempts.
                    var states = context.GetRequiredService<ReceiveEndpointStates>();
                    var cluster = broker.Nodes.Count > 1 ? new ClusterEndpointResolver(broker.Nodes) : null;
                    h.OnRefreshConnectionFactory = factory =>
                    {
                        states.Connecting();
                        if (cluster is not null)
                        {
                            cluster.Ssl = factory.Ssl;
                            factory.EndpointResolverFactory = _ => cluster;
                        }
                        return Task.CompletedTask;
                    };
                });
                // MassTransit's own queue (replies to requests) is durable on a single broker. Not in a cluster: a durable
                // classic queue lives on one node, and while that node is down it can be neither used nor declared again
                // elsewhere, which stops the bus's reconnection ("home node ... is down"); a transient one goes with its
                // node and is declared afresh on the node the bus reconnects to.
                cfg.Durable = !quorumQueues;
                if (quorumQueues)
                {
                    cfg.AutoDelete = true;
                    // The _error and _skipped queues replicated like the rest, or an endpoint could not move a message
                    // there while their one node is down.
                    cfg.SendTopology.ConfigureErrorSettings = settings => settings.SetQuorumQueue();
                    cfg.SendTopology.ConfigureDeadLetterSettings = settings => settings.SetQuorumQueue();
                }
                // MassTransit's own reply queue is otherwise named after the host and process, which a login limited
                // to names of its own may not declare.
                if (login.BusEndpointQueueName is { } busQueue)
                    cfg.OverrideDefaultBusEndpointQueueName(busQueue);
                // Each job of a batch or bundle keeps its own trace, and a message about one job names it in the logs.
                cfg.UseConsumeFilter(typeof(JobTraceFilter<>), context);
                cfg.ConfigureEndpoints(context);
            });
        });
        // Reports receive endpoints MassTransit left on a lost connection.
        services.AddSingleton<ReceiveWatchdog>();
        services.AddHostedService(sp => sp.GetRequiredService<ReceiveWatchdog>());
        return services;
    }
}
