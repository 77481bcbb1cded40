using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using Dapper;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.Gateway.Auth;

/// <summary>Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against the stored key hashes.</summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    NpgsqlDataSource db,
    IOptions<GatewayOptions> gateway)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string AdminAccountId = "acc_admin";

    private sealed record KeyOwner(string AccountId, string Role);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string header = Request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
            return AuthenticateResult.NoResult();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("expected 'Authorization: Bearer <api key>'");
        var key = header["Bearer ".Length..].Trim();
        if (key.Length is 0 or > 200)
            return AuthenticateResult.Fail("malformed API key");
        var hash = ApiKeys.Hash(key);

        var admin = gateway.Value.AdminKey;
        if (!string.IsNullOrEmpty(admin) && CryptographicOperations.FixedTimeEquals(hash, ApiKeys.Hash(admin)))
            return Success(AdminAccountId, Roles.Admin);

        await using var connection = await db.OpenConnectionAsync(Context.RequestAborted);
        var owner = await connection.QuerySingleOrDefaultAsync<KeyOwner>(new CommandDefinition(
            "select a.id as AccountId, a.role from api_keys k join accounts a on a.id = k.account_id where k.key_hash = @hash",
            new { hash }, cancellationToken: Context.RequestAborted));
        return owner is null ? AuthenticateResult.Fail("unknown API key") : Success(owner.AccountId, owner.Role);
    }

    private AuthenticateResult Success(string accountId, string role)
    {
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, accountId), new Claim(ClaimTypes.Role, role)], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        return Results.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            type: Hosting.Http.Problems.Type("unauthorized"),
            title: "Missing or invalid API key",
            detail: "send 'Authorization: Bearer <api key>' with a key issued by an admin").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Results.Problem(
            statusCode: StatusCodes.Status403Forbidden,
            type: Hosting.Http.Problems.Type("forbidden"),
            title: "Not allowed for this key's role",
            detail: "this endpoint needs a key with a different role").ExecuteAsync(Context);
}
