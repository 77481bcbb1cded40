using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

public static class JobsRegistration
{
    /// <summary>The attempts' messages come from nodes: their consumers listen on the node intake.</summary>
    public static IBusRegistrationConfigurator AddJobs(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<JobSubmittedConsumer>(c => c.Options<BatchOptions>(IntakeBatching.Default.Configure));
        bus.AddConsumer<JobFundedConsumer>(c => c.Options<BatchOptions>(IntakeBatching.Default.Configure));
        bus.AddConsumer<JobRejectedConsumer>();
        bus.AddConsumer<AttemptStartedConsumer>(c => c.Options<BatchOptions>(AttemptBatching.Default.Configure)).Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<AttemptCompletedConsumer>(c => c.Options<BatchOptions>(AttemptBatching.Default.Configure)).Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<AttemptFailedConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<JobCancelRequestedConsumer>();
        bus.AddConsumer<JobOutcomesRequestedConsumer>();
        bus.AddConsumer<Verification.OperatorExposureConsumer>();
        return bus;
    }

    /// <summary>The network's own check of a job's inputs reads them from storage, like result comparison does.</summary>
    public static IServiceCollection AddInputCheck(this IServiceCollection services)
    {
        services.AddHttpClient<InputCheck>((sp, http) =>
        {
            http.BaseAddress = sp.GetRequiredService<IOptions<SchedulerOptions>>().Value.StorageUrl;
            // Most checks read a few KiB; an input_corrupt claim streams its inputs through a hash.
            http.Timeout = TimeSpan.FromMinutes(10);
        });
        return services;
    }
}
