using MassTransit;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Scheduler.Leases;

namespace Platform.Scheduler.Workers;

public static class WorkersRegistration
{
    public static IBusRegistrationConfigurator AddWorkers(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<WorkerOnlineConsumer>();
        bus.AddConsumer<WorkerHeartbeatConsumer>();
        bus.AddConsumer<WorkerOfflineConsumer>();
        bus.AddConsumer<StakeChangedConsumer>();
        bus.AddConsumer<NetworkTotalsConsumer>();
        // Heartbeats only arrive while the bus listens: the lease monitor must know when it did not.
        bus.TryAddSingleton<DeafSpells>();
        bus.AddReceiveEndpointObserver(sp => sp.GetRequiredService<DeafSpells>());
        return bus;
    }
}
