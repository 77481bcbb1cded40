using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;

namespace Platform.Gateway.Limits;

/// <summary>Per-key rate limits (429 with Retry-After), the key-lookup guard, and the request size and header limits.</summary>
public static class RequestLimits
{
    public static WebApplicationBuilder AddRequestLimits(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<RequestLimitOptions>().BindConfiguration(RequestLimitOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var maxBody = builder.Configuration.GetValue($"{RequestLimitOptions.SectionName}:{nameof(RequestLimitOptions.MaxJsonBodyBytes)}", new RequestLimitOptions().MaxJsonBodyBytes);
        // Every body is limited unless its endpoint lifts the limit (blob uploads stream to storage, which enforces its own).
        var maxHeaders = builder.Configuration.GetValue($"{RequestLimitOptions.SectionName}:{nameof(RequestLimitOptions.MaxHeaderBytes)}", new RequestLimitOptions().MaxHeaderBytes);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = maxBody;
            // Room above the gateway's own header limit, so that UseHeaderSizeLimit answers with a problem body
            // where the server would only have closed the request with a bare 431.
            kestrel.Limits.MaxRequestHeadersTotalSize = 4 * maxHeaders;
        });
        builder.Services.AddSingleton<EventStreamSlots>();
        builder.Services.AddSingleton<KeyLookupGuard>();
        builder.Services.AddRateLimiter(limiter =>
        {
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                var o = http.RequestServices.GetRequiredService<IOptions<RequestLimitOptions>>().Value;
                if (http.Request.Path.StartsWithSegments("/health"))
                    return RateLimitPartition.GetNoLimiter("health");
                if (http.User.Identity?.IsAuthenticated != true)
                    return Bucket($"address:{http.Connection.RemoteIpAddress}", o.AnonymousPerSecond, o.AnonymousBurst);
                if (http.User.IsAdmin())
                    return RateLimitPartition.GetNoLimiter("admin");
                // A node key shares its operator's bucket, as the operator's own key did when nodes held it.
                return http.User.IsInRole(Roles.Operator) || http.User.IsInRole(Roles.Node)
                    ? Bucket($"key:{http.User.AccountOf()}", o.OperatorPerSecond, o.OperatorBurst)
                    : Bucket($"key:{http.User.AccountOf()}", o.ClientPerSecond, o.ClientBurst);
            });
            limiter.OnRejected = async (context, ct) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                await Problems.Create(StatusCodes.Status429TooManyRequests, "rate-limited", "Too many requests",
                    $"this key is over its request rate; retry after {retryAfter} s").ExecuteAsync(context.HttpContext);
            };
        });
        return builder;
    }

    /// <summary>
    /// Before authentication: a request whose key would need a database lookup (<see cref="KeyLookupGuard"/>) gets 429
    /// when its address cools down after too many unknown keys (<c>bad-key-cooldown</c>) or is over its rate of
    /// lookups (<c>rate-limited</c>), so neither guessing keys nor a flood of new ones reaches the database.
    /// </summary>
    public static IApplicationBuilder UseKeyLookupGuard(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        if (ApiKeyAuthenticationHandler.BearerKey(http.Request) is { } key)
        {
            var services = http.RequestServices;
            var hasher = services.GetRequiredService<ApiKeyHasher>();
            var hash = hasher.Hash(key);
            // Authentication reuses it: one HMAC per request.
            http.Items[ApiKeyAuthenticationHandler.KeyHashItem] = hash;
            if (!hasher.IsAdmin(hash) && services.GetRequiredService<ApiKeyCache>().Find(hash) is null)
            {
                var guard = services.GetRequiredService<KeyLookupGuard>();
                var address = KeyLookupGuard.AddressOf(http);
                if (guard.CoolingFor(address) is var cooling && cooling > TimeSpan.Zero)
                {
                    await TooManyAsync(http, cooling, "bad-key-cooldown", "Too many unknown API keys",
                        $"this address presented more than {guard.BadKeysPerMinute} unknown API keys in a minute; keys not used here lately are not checked for {Seconds(cooling)} s");
                    return;
                }
                if (!guard.TryLookup(address))
                {
                    await TooManyAsync(http, TimeSpan.FromSeconds(1), "rate-limited", "Too many requests",
                        "this address is over its rate of API key checks; retry after 1 s");
                    return;
                }
            }
        }
        await next(http);
    });

    private static int Seconds(TimeSpan wait) => Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));

    private static Task TooManyAsync(HttpContext http, TimeSpan retryAfter, string type, string title, string detail)
    {
        http.Response.Headers.RetryAfter = Seconds(retryAfter).ToString(CultureInfo.InvariantCulture);
        return Problems.Create(StatusCodes.Status429TooManyRequests, type, title, detail).ExecuteAsync(http);
    }

    /// <summary>
    /// Refuses a body larger than the limit before reading any of it, unless the endpoint lifts the limit
    /// (<see cref="IRequestSizeLimitMetadata"/>, as blob uploads do), and has the server cut off a chunked body
    /// that grows past it.
    /// </summary>
    public static IApplicationBuilder UseRequestSizeLimit(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var limit = http.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>() is { } metadata
            ? metadata.MaxRequestBodySize
            : http.RequestServices.GetRequiredService<IOptions<RequestLimitOptions>>().Value.MaxJsonBodyBytes;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
            feature.MaxRequestBodySize = limit;
        if (limit is { } max && http.Request.ContentLength > max)
        {
            await Problems.Create(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "Request body too large",
                $"the body is {http.Request.ContentLength} bytes; this endpoint takes at most {max}").ExecuteAsync(http);
            return;
        }
        await next(http);
    });

    /// <summary>
    /// Refuses a request whose headers add up to more than <see cref="RequestLimitOptions.MaxHeaderBytes"/> with a 431
    /// problem, before authentication or any other work.
    /// </summary>
    public static IApplicationBuilder UseHeaderSizeLimit(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var max = http.RequestServices.GetRequiredService<IOptions<RequestLimitOptions>>().Value.MaxHeaderBytes;
        long total = 0;
        foreach (var (name, values) in http.Request.Headers)
        {
            total += name.Length;
            foreach (var value in values)
                total += value?.Length ?? 0;
        }
        if (total > max)
        {
            // The body is not read: the connection is not reused after this answer.
            http.Response.Headers.Connection = "close";
            await Problems.Create(StatusCodes.Status431RequestHeaderFieldsTooLarge, "request-headers-too-large", "Request headers too large",
                $"the request's headers add up to {total} bytes; the gateway takes at most {max}").ExecuteAsync(http);
            return;
        }
        await next(http);
    });

    private static RateLimitPartition<string> Bucket(string key, int perSecond, int burst) =>
        RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
}
