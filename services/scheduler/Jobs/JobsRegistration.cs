using MassTransit;

namespace Platform.Scheduler.Jobs;

public static class JobsRegistration
{
    public static IBusRegistrationConfigurator AddJobs(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<JobSubmittedConsumer>();
        bus.AddConsumer<JobFundedConsumer>();
        bus.AddConsumer<JobRejectedConsumer>();
        bus.AddConsumer<AttemptStartedConsumer>();
        bus.AddConsumer<AttemptCompletedConsumer>();
        bus.AddConsumer<AttemptFailedConsumer>();
        bus.AddConsumer<JobCancelRequestedConsumer>();
        bus.AddConsumer<Verification.OperatorExposureConsumer>();
        return bus;
    }
}
