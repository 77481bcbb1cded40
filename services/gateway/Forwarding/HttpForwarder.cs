using System.Net.Http.Headers;
using Platform.Hosting.Http;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// A small streaming reverse proxy over HttpClient: bodies are streamed both ways (never buffered),
/// hop-by-hop headers are dropped, the caller's identity is replaced by the authenticated account, and an
/// unreachable upstream is a 503 problem.
/// </summary>
public sealed class HttpForwarder(HttpClient http, ILogger<HttpForwarder> logger) : IForwarder
{
    public const string AccountHeader = "X-Platform-Account";

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Host", "Authorization", AccountHeader,
        // Only storage nodes may say they are one (a peer's read gets no fallback to other peers).
        "X-Platform-Storage-Peer",
    };

    // Set from the request itself, not copied: a second Content-Length would make the upstream reject the request.
    private static readonly HashSet<string> SetExplicitly = new(StringComparer.OrdinalIgnoreCase) { "Content-Length" };

    public async Task ForwardAsync(HttpContext context, Uri upstream, string path, string accountId)
    {
        var request = context.Request;
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), new Uri(upstream, path + request.QueryString));
        if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
        {
            message.Content = new StreamContent(request.Body);
            if (request.ContentLength is { } length)
                message.Content.Headers.ContentLength = length;
        }
        foreach (var (name, values) in request.Headers)
        {
            if (HopByHop.Contains(name) || SetExplicitly.Contains(name))
                continue;
            if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
        }
        message.Headers.TryAddWithoutValidation(AccountHeader, accountId);
        message.Headers.TryAddWithoutValidation("X-Forwarded-For", context.Connection.RemoteIpAddress?.ToString());
        message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        message.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        }
        catch (HttpRequestException ex)
        {
            logger.LogWarning("Upstream {Upstream} unreachable: {Message}", upstream, ex.Message);
            await Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Service unavailable",
                "a service behind the gateway is not reachable; try again shortly").ExecuteAsync(context);
            return;
        }

        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            CopyHeaders(response.Headers, context.Response.Headers);
            CopyHeaders(response.Content.Headers, context.Response.Headers);
            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            await body.CopyToAsync(context.Response.Body, context.RequestAborted);
        }
    }

    private static void CopyHeaders(HttpHeaders from, IHeaderDictionary to)
    {
        foreach (var (name, values) in from)
        {
            if (!HopByHop.Contains(name))
                to[name] = values.ToArray();
        }
    }
}
