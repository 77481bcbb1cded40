using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;

namespace Platform.Gateway.Limits;

/// <summary>Per-key rate limits (429 with Retry-After) and the request size limit.</summary>
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
