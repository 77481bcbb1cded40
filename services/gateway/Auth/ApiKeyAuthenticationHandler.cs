using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using Dapper;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Gateway.Limits;

namespace Platform.Gateway.Auth;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against the stored key hashes: HMAC-SHA256 under
/// Platform:KeyHashSecret, looked up in one indexed read and compared again in constant time. A key stored before
/// the secret existed (plain SHA-256, scheme <c>sha256</c>) is found by its old hash and re-hashed on that first
/// use, as only then is the key itself at hand. Keys found are remembered for a minute (<see cref="ApiKeyCache"/>); an
/// unknown key costs two indexed reads and no write, and counts against its address (<see cref="KeyLookupGuard"/>).
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    NpgsqlDataSource db,
    ApiKeyHasher hasher,
    ApiKeyCache cache,
    KeyLookupGuard guard)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string AdminAccountId = "acc_admin";

    /// <summary>HttpContext item holding the HMAC of the request's key, computed once (by the key-lookup guard) before authentication.</summary>
    public const string KeyHashItem = "platform:key-hash";

    /// <summary>Claim naming the node key a caller used (<see cref="Roles.Node"/>): enrollment binds that key to a worker id.</summary>
    public const string NodeKeyIdClaim = "platform:node-key";

    // Role: the key's scope when it has one (a node key), else its account's: a node key of an operator is a node.
    private sealed record KeyOwner(string AccountId, string Role, byte[] KeyHash, string? NodeKeyId);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string header = Request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
            return AuthenticateResult.NoResult();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("expected 'Authorization: Bearer <api key>'");
        if (BearerKey(Request) is not { } key)
            return AuthenticateResult.Fail("malformed API key");
        var hash = Context.Items.TryGetValue(KeyHashItem, out var hashed) && hashed is byte[] guarded ? guarded : hasher.Hash(key);
        if (hasher.IsAdmin(hash))
            return Success(AdminAccountId, Roles.Admin);
        if (cache.Find(hash) is { } known)
            return Success(known.AccountId, known.Role, known.NodeKeyId);

        var ct = Context.RequestAborted;
        await using var connection = await db.OpenConnectionAsync(ct);
        var owner = await connection.QuerySingleOrDefaultAsync<KeyOwner>(new CommandDefinition(
            "select a.id as AccountId, coalesce(k.scope, a.role) as Role, k.key_hash as KeyHash, k.id as NodeKeyId from api_keys k join accounts a on a.id = k.account_id where k.key_hash = @hash and k.scheme = @scheme",
            new { hash, scheme = ApiKeys.HmacScheme }, cancellationToken: ct));
        if (owner is not null && CryptographicOperations.FixedTimeEquals(owner.KeyHash, hash))
            return Remembered(hash, owner);

        var legacy = ApiKeys.LegacyHash(key);
        if (!await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select exists (select 1 from api_keys where key_hash = @legacy and scheme = @legacyScheme)",
            new { legacy, legacyScheme = ApiKeys.LegacyScheme }, cancellationToken: ct)))
            return Unknown();
        var upgraded = await connection.QuerySingleOrDefaultAsync<KeyOwner>(new CommandDefinition(
            """
            update api_keys k set key_hash = @hash, scheme = @scheme from accounts a
            where a.id = k.account_id and k.key_hash = @legacy and k.scheme = @legacyScheme
            returning a.id as AccountId, coalesce(k.scope, a.role) as Role, @legacy as KeyHash, k.id as NodeKeyId
            """,
            new { hash, scheme = ApiKeys.HmacScheme, legacy, legacyScheme = ApiKeys.LegacyScheme }, cancellationToken: ct));
        // An unknown key is not remembered: it may be issued a moment later, and must then work at once.
        return upgraded is not null && CryptographicOperations.FixedTimeEquals(upgraded.KeyHash, legacy)
            ? Remembered(hash, upgraded)
            : Unknown();
    }

    /// <summary>An unknown key: counted against the caller's address (<see cref="KeyLookupGuard"/>), never written anywhere.</summary>
    private AuthenticateResult Unknown()
    {
        guard.Failed(KeyLookupGuard.AddressOf(Context));
        return AuthenticateResult.Fail("unknown API key");
    }

    /// <summary>The key of an <c>Authorization: Bearer</c> header, or null when there is none or it is malformed (empty, over 200 characters).</summary>
    public static string? BearerKey(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return null;
        var key = header["Bearer ".Length..].Trim();
        return key.Length is 0 or > 200 ? null : key;
    }

    private AuthenticateResult Remembered(byte[] hash, KeyOwner owner)
    {
        cache.Remember(hash, owner.AccountId, owner.Role, owner.NodeKeyId);
        return Success(owner.AccountId, owner.Role, owner.NodeKeyId);
    }

    private AuthenticateResult Success(string accountId, string role, string? nodeKeyId = null)
    {
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, accountId), new Claim(ClaimTypes.Role, role)], SchemeName);
        if (nodeKeyId is not null)
            identity.AddClaim(new Claim(NodeKeyIdClaim, nodeKeyId));
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
