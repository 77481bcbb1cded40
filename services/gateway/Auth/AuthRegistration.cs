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
            // A node key's role is in none of these but the two below: everything else answers it 403.
            .AddPolicy("any", p => p.RequireRole(Roles.All))
            .AddPolicy(Roles.BlobIo, p => p.RequireRole([.. Roles.All, Roles.Node]))
            .AddPolicy(Roles.Enroll, p => p.RequireRole(Roles.Operator, Roles.Node));
        return builder;
    }

    public static string AccountOf(this ClaimsPrincipal user) => user.FindFirstValue(ClaimTypes.NameIdentifier)!;

    /// <summary>The id of the node key the caller authenticated with; null for any other key.</summary>
    public static string? NodeKeyIdOf(this ClaimsPrincipal user) => user.FindFirstValue(ApiKeyAuthenticationHandler.NodeKeyIdClaim);

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(Roles.Admin);

    public static AccountId AccountIdOf(this ClaimsPrincipal user) => AccountId.From(user.AccountOf());
}
