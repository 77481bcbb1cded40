using System.Buffers.Text;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Platform.Hosting.Http;

/// <summary>The secret the gateway and the services behind it share, and how old a proof may be.</summary>
public sealed class GatewayProofOptions
{
    public const string SectionName = "Platform";

    /// <summary>
    /// From configuration only (Platform__GatewaySecret), at least 32 characters; required by the gateway and by
    /// every service that takes an account from it. Nodes never hold it.
    /// </summary>
    [Required(ErrorMessage = "Platform:GatewaySecret is required: a random string of at least 32 characters shared by the gateway and the services behind it (./platform up generates one into .platform/gateway.secret)")]
    [MinLength(32, ErrorMessage = "Platform:GatewaySecret must be at least 32 characters")]
    public string? GatewaySecret { get; set; }

    /// <summary>How far a proof's timestamp may lie from this service's clock, either way (clock skew and transit).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan GatewayProofWindow { get; set; } = TimeSpan.FromSeconds(30);
}

public enum GatewayProofCheck
{
    Valid,
    Missing,
    Malformed,
    Expired,
    FromTheFuture,
    Mismatch,
}

/// <summary>
/// The gateway's word that it authenticated the account in X-Platform-Account for this very request:
/// <c>X-Platform-Gateway-Proof: v1.{unix seconds}.{base64url HMAC-SHA256}</c> under Platform:GatewaySecret, over
/// <c>"platform-gateway-proof-v1\n{METHOD}\n{path and query as sent}\n{account}\n{timestamp}\n"</c>. Services
/// behind the gateway believe an account only with a valid proof (<see cref="GatewayProofEndpoints.RequireGatewayProof{TBuilder}"/>),
/// so a caller who reaches their port directly cannot name one. The body is not covered (it is streamed): a proof
/// seen on the wire could be replayed within the window to the same method, path and account.
/// </summary>
public sealed class GatewayProof(IOptions<GatewayProofOptions> options, TimeProvider clock)
{
    public const string Header = "X-Platform-Gateway-Proof";
    public const string AccountHeader = "X-Platform-Account";
    public const string Version = "v1";

    private const int MacLength = 32;
    private readonly byte[] secret = Encoding.UTF8.GetBytes(options.Value.GatewaySecret ?? throw new InvalidOperationException("Platform:GatewaySecret is not set"));

    /// <summary>The proof for a request the gateway is about to send; <paramref name="pathAndQuery"/> exactly as it goes on the wire.</summary>
    public string Sign(string method, string pathAndQuery, string account) =>
        Sign(secret, method, pathAndQuery, account, clock.GetUtcNow().ToUnixTimeSeconds());

    public GatewayProofCheck Verify(string? proof, string method, string pathAndQuery, string? account) =>
        Verify(secret, proof, method, pathAndQuery, account, clock.GetUtcNow(), options.Value.GatewayProofWindow);

    public static string Sign(byte[] secret, string method, string pathAndQuery, string account, long timestamp) =>
        $"{Version}.{timestamp.ToString(CultureInfo.InvariantCulture)}.{Base64Url.EncodeToString(Mac(secret, method, pathAndQuery, account, timestamp))}";

    public static GatewayProofCheck Verify(byte[] secret, string? proof, string method, string pathAndQuery, string? account, DateTimeOffset now, TimeSpan window)
    {
        if (string.IsNullOrEmpty(proof) || string.IsNullOrEmpty(account))
            return GatewayProofCheck.Missing;
        var parts = proof.Split('.');
        if (parts.Length != 3 || parts[0] != Version
            || parts[1].Length is 0 or > 12 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp)
            || DecodeMac(parts[2]) is not { } given)
            return GatewayProofCheck.Malformed;
        var age = now.ToUnixTimeSeconds() - timestamp;
        if (age > window.TotalSeconds)
            return GatewayProofCheck.Expired;
        if (-age > window.TotalSeconds)
            return GatewayProofCheck.FromTheFuture;
        return CryptographicOperations.FixedTimeEquals(Mac(secret, method, pathAndQuery, account, timestamp), given)
            ? GatewayProofCheck.Valid
            : GatewayProofCheck.Mismatch;
    }

    private static byte[] Mac(byte[] secret, string method, string pathAndQuery, string account, long timestamp) =>
        HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(
            $"platform-gateway-proof-{Version}\n{method.ToUpperInvariant()}\n{pathAndQuery}\n{account}\n{timestamp.ToString(CultureInfo.InvariantCulture)}\n"));

    // Only the one canonical spelling of 32 bytes (43 characters, unused bits zero), so a proof has exactly one text.
    private static byte[]? DecodeMac(string text)
    {
        if (text.Length != Base64Url.GetEncodedLength(MacLength) || !Base64Url.IsValid(text, out var length) || length != MacLength)
            return null;
        var mac = Base64Url.DecodeFromChars(text);
        return Base64Url.EncodeToString(mac) == text ? mac : null;
    }
}

/// <summary>Services take the account through these, never from the X-Platform-Account header itself.</summary>
public static class GatewayProofEndpoints
{
    public const string ProblemSlug = "gateway-proof-required";

    private sealed record VerifiedAccount(string? Account);

    /// <summary>Binds and checks Platform:GatewaySecret at start (a service without it does not start) and registers <see cref="GatewayProof"/>.</summary>
    public static IServiceCollection AddGatewayProof(this IServiceCollection services)
    {
        services.AddOptions<GatewayProofOptions>().BindConfiguration(GatewayProofOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton(sp => new GatewayProof(sp.GetRequiredService<IOptions<GatewayProofOptions>>(), sp.GetService<TimeProvider>() ?? TimeProvider.System));
        return services;
    }

    /// <summary>
    /// The endpoints answer only requests that carry an account with a valid gateway proof: anything else is a 401
    /// problem (<c>gateway-proof-required</c>) before the handler runs or reads the body. With
    /// <paramref name="accountOptional"/>, a request that names no account at all (neither header) goes on without
    /// one; naming one still needs the proof.
    /// </summary>
    public static TBuilder RequireGatewayProof<TBuilder>(this TBuilder builder, bool accountOptional = false) where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var headers = http.Request.Headers;
            if (accountOptional && !headers.ContainsKey(GatewayProof.AccountHeader) && !headers.ContainsKey(GatewayProof.Header))
            {
                http.Features.Set(new VerifiedAccount(null));
                return await next(context);
            }
            var account = Single(headers[GatewayProof.AccountHeader]);
            var check = http.RequestServices.GetRequiredService<GatewayProof>()
                .Verify(Single(headers[GatewayProof.Header]), http.Request.Method, Target(http.Request), account);
            if (check != GatewayProofCheck.Valid)
            {
                http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GatewayProof))
                    .LogWarning("Refused {Method} {Path} from {Remote}: gateway proof {Check}", http.Request.Method, http.Request.Path.Value,
                        http.Connection.RemoteIpAddress, check);
                return Problems.Create(StatusCodes.Status401Unauthorized, ProblemSlug, "Gateway proof required",
                    "this service takes an account only from the gateway, with its proof; call it through the gateway");
            }
            http.Features.Set(new VerifiedAccount(account));
            return await next(context);
        });
        return builder;
    }

    /// <summary>The account the gateway proved for this request. Only on endpoints with <see cref="RequireGatewayProof{TBuilder}"/>.</summary>
    public static string GatewayAccount(this HttpContext http) =>
        http.GatewayAccountIfAny() ?? throw new InvalidOperationException("this request names no account: the endpoint needs RequireGatewayProof() without accountOptional");

    /// <summary>The proved account, or null when an account-optional endpoint was called without one.</summary>
    public static string? GatewayAccountIfAny(this HttpContext http) =>
        (http.Features.Get<VerifiedAccount>() ?? throw new InvalidOperationException($"{http.Request.Path} has no RequireGatewayProof(): its account cannot be believed")).Account;

    /// <summary>The request target as received (what the gateway signed), or its parts re-escaped when the server keeps no raw target.</summary>
    public static string Target(HttpRequest request)
    {
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        return string.IsNullOrEmpty(raw) ? request.PathBase.Add(request.Path).ToUriComponent() + request.QueryString.ToUriComponent() : raw;
    }

    // Two values of a header the gateway sets once mean someone added one.
    private static string? Single(StringValues values) => values.Count == 1 ? values[0] : null;
}
