using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

public static class AttemptsRegistration
{
    public static IBusRegistrationConfigurator AddAttempts(this IBusRegistrationConfigurator bus, EnrolledNode node)
    {
        // The scheduler sends AssignJob to this node's own queue, taken at most `slots` at a time; the queue
        // outlives a restart so work sent while the node was down is still there when it comes back.
        bus.AddConsumer<AssignJobConsumer>().Endpoint(e =>
        {
            e.Name = node.Enrollment.Broker.AssignmentQueue;
            e.ConcurrentMessageLimit = node.Identity.Slots;
            e.PrefetchCount = node.Identity.Slots;
        });
        // Cancels have their own queue so they are not stuck behind the attempts they are meant to stop.
        bus.AddConsumer<CancelAttemptConsumer>().Endpoint(e => e.Name = node.Enrollment.Broker.ControlQueue);
        // The node's login may declare only its own names. So: no binding of the queues to the message types'
        // shared exchanges (the scheduler sends to the queues directly), no Fault<T> published, and no _error or
        // _skipped queue declared: a message that fails for good is dropped and the scheduler's lease gives the
        // job to another worker.
        bus.AddConfigureEndpointsCallback((_, _, endpoint) =>
        {
            endpoint.ConfigureConsumeTopology = false;
            endpoint.PublishFaults = false;
            endpoint.DiscardFaultedMessages();
            endpoint.DiscardSkippedMessages();
        });
        return bus;
    }

    public static WebApplicationBuilder AddAttemptServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ComputeNode>();
        builder.Services.AddSingleton(sp => EnergyMeter.For(sp.GetRequiredService<IOptions<WorkerOptions>>().Value));
        builder.Services.AddSingleton<InputCache>();
        builder.Services.AddSingleton<PinnedOutputs>();
        builder.Services.AddHostedService<MemoryTrim>();
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o => o.WaitUntilStarted = true);
        return builder;
    }
}
