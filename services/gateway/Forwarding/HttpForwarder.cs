using System.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Platform.Hosting.Http;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// A small streaming reverse proxy over HttpClient: bodies are streamed both ways (never buffered),
/// hop-by-hop headers (and those the Connection header names) are dropped, the caller's identity is replaced by the authenticated account, signed with
/// the gateway proof (shared/Platform.Hosting/Http/GatewayProof.cs) the services check, and X-Forwarded-* set. Instances of a service are used in turn; one that is unreachable or answers 502/503/504
/// is reported to its pool (passive health) and, when the request has no body to resend, the next instance
/// is tried. No instance reachable is a 503 problem; no answer within the route's timeout a 504.
/// </summary>
public sealed class HttpForwarder(HttpClient http, IOptions<UpstreamOptions> options, GatewayProof proof, ILogger<HttpForwarder> logger) : IForwarder
{
    public const string AccountHeader = GatewayProof.AccountHeader;

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Host", "Authorization", AccountHeader, GatewayProof.Header,
        // Only storage nodes may say they are one (a peer's read gets no fallback to other peers).
        "X-Platform-Storage-Peer",
        // Set here from the connection, never passed on from the caller.
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
    };

    // Set from the request itself, not copied: a second Content-Length would make the upstream reject the request.
    private static readonly HashSet<string> SetExplicitly = new(StringComparer.OrdinalIgnoreCase) { "Content-Length" };

    private static bool IsUnavailable(HttpResponseMessage response) =>
        (int)response.StatusCode is StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout;

    public async Task ForwardAsync(HttpContext context, UpstreamPool upstream, string path, string accountId, TimeSpan? timeout = null)
    {
        var request = context.Request;
        var hasBody = request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0;
        // A body is streamed once: only a request without one can be sent to another instance.
        var tries = hasBody ? 1 : upstream.Instances.Count;
        HttpResponseMessage? response = null;
        for (var attempt = 1; attempt <= tries && response is null; attempt++)
        {
            var instance = upstream.Next();
            using var message = Message(context, instance, path, accountId, hasBody);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            deadline.CancelAfter(timeout ?? options.Value.Timeout);
            try
            {
                response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            }
            catch (HttpRequestException ex)
            {
                upstream.ReportFailure(instance);
                logger.LogWarning("{Service} instance {Instance} unreachable: {Message}", upstream.Service, instance, ex.Message);
                continue;
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                upstream.ReportFailure(instance);
                logger.LogWarning("{Service} instance {Instance} did not answer {Path} within {Timeout}", upstream.Service, instance, path, timeout ?? options.Value.Timeout);
                await Problems.Create(StatusCodes.Status504GatewayTimeout, "upstream-timeout", "Service too slow",
                    $"the {upstream.Service} service did not answer in time; try again shortly").ExecuteAsync(context);
                return;
            }
            if (IsUnavailable(response))
            {
                upstream.ReportFailure(instance);
                if (attempt < tries)
                {
                    response.Dispose();
                    response = null;
                }
            }
            else
                upstream.ReportSuccess(instance);
        }
        if (response is null)
        {
            await Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Service unavailable",
                $"the {upstream.Service} service is not reachable; try again shortly").ExecuteAsync(context);
            return;
        }

        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            var namedInConnection = NamedIn(response.Headers.Connection);
            CopyHeaders(response.Headers, context.Response.Headers, namedInConnection);
            CopyHeaders(response.Content.Headers, context.Response.Headers, namedInConnection);
            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            await body.CopyToAsync(context.Response.Body, context.RequestAborted);
        }
    }

    private HttpRequestMessage Message(HttpContext context, Uri instance, string path, string accountId, bool hasBody)
    {
        var request = context.Request;
        var message = new HttpRequestMessage(new HttpMethod(request.Method), new Uri(instance, path + request.QueryString));
        if (hasBody)
        {
            message.Content = new StreamContent(request.Body);
            if (request.ContentLength is { } length)
                message.Content.Headers.ContentLength = length;
        }
        var namedInConnection = NamedIn(request.Headers.Connection);
        foreach (var (name, values) in request.Headers)
        {
            if (HopByHop.Contains(name) || SetExplicitly.Contains(name) || namedInConnection.Contains(name))
                continue;
            if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
        }
        // Only a request made for an account carries one, signed over exactly what goes on the wire.
        if (accountId.Length > 0)
        {
            message.Headers.TryAddWithoutValidation(AccountHeader, accountId);
            message.Headers.TryAddWithoutValidation(GatewayProof.Header, proof.Sign(message.Method.Method, message.RequestUri!.PathAndQuery, accountId));
        }
        message.Headers.TryAddWithoutValidation("X-Forwarded-For", context.Connection.RemoteIpAddress?.ToString());
        message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        message.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);
        return message;
    }

    private static void CopyHeaders(HttpHeaders from, IHeaderDictionary to, ISet<string> namedInConnection)
    {
        foreach (var (name, values) in from)
        {
            if (!HopByHop.Contains(name) && !namedInConnection.Contains(name))
                to[name] = values.ToArray();
        }
    }

    /// <summary>
    /// The headers a Connection header names are hop-by-hop too (RFC 9110 §7.6.1): they are meant for the next hop
    /// only, so a proxy removes them along with Connection itself.
    /// </summary>
    private static HashSet<string> NamedIn(IEnumerable<string?> connection) =>
        new(connection.SelectMany(value => (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)),
            StringComparer.OrdinalIgnoreCase);
}
