using Microsoft.Extensions.DependencyInjection;

namespace Platform.Hosting.Outbox;

public static class OutboxRegistration
{
    public static IServiceCollection AddPlatformOutbox(this IServiceCollection services)
    {
        services.AddOptions<OutboxOptions>().BindConfiguration("Outbox");
        services.AddSingleton<MessageOutbox>();
        services.AddHostedService<OutboxRelay>();
        return services;
    }
}
