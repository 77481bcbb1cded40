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
        // Each attempt has its own limit (Webhooks:Timeout), not the client's default 100 s.
        services.AddHttpClient(WebhookHttp.ClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => WebhookHttp.CreateHandler(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<WebhookOptions>>().Value));
        services.AddSingleton<WebhookSender>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookSender>());
        return services;
    }
}
