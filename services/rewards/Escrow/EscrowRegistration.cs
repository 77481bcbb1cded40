using MassTransit;

namespace Platform.Rewards.Escrow;

public static class EscrowRegistration
{
    public static IBusRegistrationConfigurator AddEscrow(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<JobSubmittedConsumer>(c => c.Options<BatchOptions>(EscrowBatching.Default.Configure));
        bus.AddConsumer<JobCompletedConsumer>(c => c.Options<BatchOptions>(EscrowBatching.Default.Configure));
        bus.AddConsumer<JobFailedConsumer>();
        bus.AddConsumer<JobCancelledConsumer>();
        bus.AddConsumer<Pins.ChargePinFeeConsumer>();
        return bus;
    }

    public static IServiceCollection AddEscrowOptions(this IServiceCollection services)
    {
        services.AddSingleton<Ledger.KnownAccounts>();
        services.AddOptions<PricingOptions>().BindConfiguration(PricingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddHostedService<EscrowReconciler>();
        return services;
    }
}
