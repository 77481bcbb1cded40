using Microsoft.Extensions.Options;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Verification;

public static class VerificationRegistration
{
    public static IServiceCollection AddVerification(this IServiceCollection services)
    {
        services.AddSingleton<SpotCheckDraw>();
        services.AddHttpClient<ResultComparer>((sp, http) =>
        {
            http.BaseAddress = sp.GetRequiredService<IOptions<SchedulerOptions>>().Value.StorageUrl;
            http.Timeout = TimeSpan.FromMinutes(5);
        });
        return services;
    }
}
