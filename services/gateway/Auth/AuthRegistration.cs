using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Platform.Contracts;

namespace Platform.Gateway.Auth;

public static class AuthRegistration
{
    public static WebApplicationBuilder AddApiKeyAuth(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ApiKeyHasher>();
        builder.Services.AddSingleton<ApiKeyCache>();
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Roles.Admin, p => p.RequireRole(Roles.Admin))
            .AddPolicy(Roles.Client, p => p.RequireRole(Roles.Client, Roles.Admin))
            .AddPolicy(Roles.Operator, p => p.RequireRole(Roles.Operator))
            .AddPolicy("any", p => p.RequireRole(Roles.All));
        return builder;
    }

    public static string AccountOf(this ClaimsPrincipal user) => user.FindFirstValue(ClaimTypes.NameIdentifier)!;

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(Roles.Admin);

    public static AccountId AccountIdOf(this ClaimsPrincipal user) => AccountId.From(user.AccountOf());
}
