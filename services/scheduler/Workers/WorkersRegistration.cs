using MassTransit;

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
        return bus;
    }
}
