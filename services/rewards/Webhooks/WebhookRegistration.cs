using MassTransit;

namespace Platform.Rewards.Webhooks;

public static class WebhookRegistration
{
    public static IBusRegistrationConfigurator AddWebhooks(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<AccountBalanceLowConsumer>();
        return bus;
    }

    public static IServiceCollection AddWebhookSender(this IServiceCollection services)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddHttpClient(WebhookHttp.ClientName)
            .ConfigurePrimaryHttpMessageHandler(sp => WebhookHttp.CreateHandler(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<WebhookOptions>>().Value));
        services.AddSingleton<WebhookSender>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookSender>());
        return services;
    }
}
