using System.Net.Http.Headers;
using Platform.Hosting.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// What YARP does to a request the gateway forwards and to its answer, beyond its own copying (which already drops
/// Connection, Keep-Alive, Transfer-Encoding, TE, Upgrade, Proxy-* and the like):
/// <list type="bullet">
/// <item>headers named in Connection are dropped both ways (RFC 9110 §7.6.1): YARP drops only a fixed list;</item>
/// <item>what only the gateway may say never comes from the caller: Authorization (the API key stays here), every
/// X-Platform-* header (the account, its proof, the storage peer marker, anything internal added later) and
/// X-Forwarded-* / Forwarded, which are set here from the connection;</item>
/// <item>the caller's Host is not passed on (the destination's authority is used); it travels only as
/// X-Forwarded-Host, information rather than something a service may trust;</item>
/// <item>a request made for an account carries it with the gateway's proof, signed over exactly the method, path and
/// query that go on the wire (<see cref="GatewayProof"/>).</item>
/// </list>
/// One instance per forwarded request: it carries the request's target path and account.
/// </summary>
public sealed class ForwardingTransformer(string path, string account, GatewayProof proof) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext http, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(http, proxyRequest, destinationPrefix, cancellationToken);
        var hopOnly = NamedIn(http.Request.Headers.Connection);
        Remove(proxyRequest.Headers, name => hopOnly.Contains(name) || IsGatewaysToSet(name));
        if (proxyRequest.Content is not null)
            Remove(proxyRequest.Content.Headers, hopOnly.Contains);
        proxyRequest.Headers.Host = null;

        proxyRequest.RequestUri = new Uri(new Uri(destinationPrefix), path + http.Request.QueryString);
        proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", http.Connection.RemoteIpAddress?.ToString());
        proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Proto", http.Request.Scheme);
        proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", http.Request.Host.Value);
        if (account.Length > 0)
        {
            proxyRequest.Headers.TryAddWithoutValidation(GatewayProof.AccountHeader, account);
            proxyRequest.Headers.TryAddWithoutValidation(GatewayProof.Header, proof.Sign(proxyRequest.Method.Method, proxyRequest.RequestUri.PathAndQuery, account));
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext http, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copy = await base.TransformResponseAsync(http, proxyResponse, cancellationToken);
        if (proxyResponse is not null && proxyResponse.Headers.NonValidated.TryGetValues("Connection", out var connection))
        {
            foreach (var name in NamedIn(connection))
                http.Response.Headers.Remove(name);
        }
        return copy;
    }

    private static bool IsGatewaysToSet(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("X-Platform-", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Forwarded", StringComparison.OrdinalIgnoreCase);

    private static void Remove(HttpHeaders headers, Func<string, bool> drop)
    {
        foreach (var name in headers.NonValidated.Select(h => h.Key).Where(drop).ToList())
            headers.Remove(name);
    }

    /// <summary>The header names a Connection header lists, whatever the spacing, case or number of values.</summary>
    private static HashSet<string> NamedIn(IEnumerable<string?> connection) =>
        new(connection.SelectMany(value => (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)),
            StringComparer.OrdinalIgnoreCase);
}
