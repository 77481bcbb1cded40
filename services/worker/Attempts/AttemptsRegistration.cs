using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

public static class AttemptsRegistration
{
    public static IBusRegistrationConfigurator AddAttempts(this IBusRegistrationConfigurator bus, NodeIdentity identity)
    {
        // The scheduler sends AssignJob to this node's own queue, taken at most `slots` at a time; the queue
        // outlives a restart so work sent while the node was down is still there when it comes back.
        bus.AddConsumer<AssignJobConsumer>().Endpoint(e =>
        {
            e.Name = $"worker-{identity.WorkerId}";
            e.ConcurrentMessageLimit = identity.Slots;
            e.PrefetchCount = identity.Slots;
        });
        // Cancels have their own queue so they are not stuck behind the attempts they are meant to stop.
        bus.AddConsumer<CancelAttemptConsumer>().Endpoint(e => e.Name = $"worker-{identity.WorkerId}-control");
        return bus;
    }

    public static WebApplicationBuilder AddAttemptServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ComputeNode>();
        builder.Services.AddSingleton(sp => EnergyMeter.For(sp.GetRequiredService<IOptions<WorkerOptions>>().Value));
        builder.Services.AddSingleton<InputCache>();
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o => o.WaitUntilStarted = true);
        return builder;
    }
}
