using MassTransit;

namespace Platform.Rewards.Escrow;

public static class EscrowRegistration
{
    public static IBusRegistrationConfigurator AddEscrow(this IBusRegistrationConfigurator bus)
    {
        // Two batches at once: one can commit while the next fills.
        bus.AddConsumer<JobSubmittedConsumer>(c => c.Options<BatchOptions>(o => o
            .SetMessageLimit(EscrowBatch.Default.MessageLimit).SetTimeLimit(EscrowBatch.Default.TimeLimit).SetConcurrencyLimit(2)));
        bus.AddConsumer<JobCompletedConsumer>();
        bus.AddConsumer<JobFailedConsumer>();
        bus.AddConsumer<JobCancelledConsumer>();
        bus.AddConsumer<Pins.ChargePinFeeConsumer>();
        return bus;
    }

    public static IServiceCollection AddEscrowOptions(this IServiceCollection services)
    {
        services.AddSingleton<Ledger.KnownAccounts>();
        services.AddOptions<PricingOptions>().BindConfiguration(PricingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        return services;
    }
}
