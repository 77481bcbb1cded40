using MassTransit;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

public static class AttemptsRegistration
{
    public static IBusRegistrationConfigurator AddAttempts(this IBusRegistrationConfigurator bus, NodeIdentity identity)
    {
        // The scheduler sends AssignJob to this node's own queue; the queue outlives a restart so work sent
        // while the node was down is still there when it comes back.
        bus.AddConsumer<AssignJobConsumer>().Endpoint(e => e.Name = $"worker-{identity.WorkerId}");
        return bus;
    }

    public static WebApplicationBuilder AddAttemptServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CpuKernels>();
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o => o.WaitUntilStarted = true);
        return builder;
    }
}
