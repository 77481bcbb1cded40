using MassTransit;
using Platform.Scheduler.Nodes;

namespace Platform.Scheduler.Jobs;

public static class JobsRegistration
{
    /// <summary>The attempts' messages come from nodes: their consumers listen on the node intake.</summary>
    public static IBusRegistrationConfigurator AddJobs(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<JobSubmittedConsumer>();
        bus.AddConsumer<JobFundedConsumer>();
        bus.AddConsumer<JobRejectedConsumer>();
        bus.AddConsumer<AttemptStartedConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<AttemptCompletedConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<AttemptFailedConsumer>().Endpoint(NodeIntake.OnIntake);
        bus.AddConsumer<JobCancelRequestedConsumer>();
        bus.AddConsumer<Verification.OperatorExposureConsumer>();
        return bus;
    }
}
