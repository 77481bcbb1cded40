using MassTransit;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Scheduler.Leases;
using Platform.Scheduler.Nodes;

namespace Platform.Scheduler.Workers;

public static class WorkersRegistration
{
    public static IBusRegistrationConfigurator AddWorkers(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<WorkerOnlineConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<WorkerHeartbeatConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<WorkerOfflineConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<StakeChangedConsumer>();
        bus.AddConsumer<NetworkTotalsConsumer>();
        // Heartbeats only arrive while the bus listens: the lease monitor must know when it did not.
        bus.TryAddSingleton<DeafSpells>();
        bus.AddReceiveEndpointObserver(sp => sp.GetRequiredService<DeafSpells>());
        return bus;
    }
}
