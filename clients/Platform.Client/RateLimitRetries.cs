using System.Net;
using System.Net.Http.Json;

namespace Platform.Client;

/// <summary>
/// Waits out the gateway's 429 (Too Many Requests) for as long as its Retry-After says and sends the request
/// again, up to <see cref="MaxRetries"/> times. The gateway answers 429 before it does anything with a request,
/// so any request may be sent again, a POST included, as long as its body can be: a JSON or byte body can, a
/// streamed upload cannot and gets the 429. A wait longer than <see cref="LongestWait"/> is the caller's to
/// decide on, and so is the last 429: <see cref="PlatformApiException.RetryAfter"/> carries the wait.
/// </summary>
internal sealed class RateLimitRetries(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    internal const int MaxRetries = 3;
    internal static readonly TimeSpan LongestWait = TimeSpan.FromSeconds(30);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        for (var retry = 0; ; retry++)
        {
            var response = await base.SendAsync(request, ct);
            if (response.StatusCode != HttpStatusCode.TooManyRequests || retry == MaxRetries || request.Content is not (null or JsonContent or ByteArrayContent))
                return response;
            var wait = RetryAfter(response) ?? TimeSpan.FromSeconds(1);
            if (wait > LongestWait)
                return response;
            response.Dispose();
            await Task.Delay(wait, ct);
        }
    }

    /// <summary>The wait a 429 or 503 asks for, in either of Retry-After's forms.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero,
        _ => null,
    };
}
