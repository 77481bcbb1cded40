namespace Platform.Scheduler.Placement;

public static class PlacementRegistration
{
    public static IServiceCollection AddPlacement(this IServiceCollection services)
    {
        services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<PlacementLog>();
        services.AddSingleton<PlacementLogWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<PlacementLogWriter>());
        services.AddSingleton<FairShareCounters>();
        services.AddSingleton<ReadyQueue>();
        services.AddSingleton<Dispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<Dispatcher>());
        services.AddSingleton<Leases.LeaseMonitor>();
        services.AddHostedService(sp => sp.GetRequiredService<Leases.LeaseMonitor>());
        services.AddHostedService<Jobs.JobDeadlines>();
        return services;
    }
}
