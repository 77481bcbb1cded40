using Platform.Hosting.Http;

namespace Platform.Testing;

/// <summary>
/// Signs requests as the gateway does (shared/Platform.Hosting/Http/GatewayProof.cs), for tests that call
/// rewards or storage directly: a request with an X-Platform-Account header gets a valid X-Platform-Gateway-Proof
/// for its final method, path and query under the environment's gateway secret. Requests without the header go
/// out unsigned.
/// </summary>
public sealed class GatewaySigner(string secret) : DelegatingHandler(new HttpClientHandler())
{
    /// <summary>An HttpClient on <paramref name="baseAddress"/> that signs as the gateway of <paramref name="env"/>.</summary>
    public static HttpClient Client(TestEnvironment env, Uri baseAddress) => new(new GatewaySigner(env.GatewaySecret)) { BaseAddress = baseAddress };

    /// <summary>The proof the gateway would send for this request now.</summary>
    public static string Proof(string secret, HttpMethod method, Uri uri, string account) =>
        GatewayProof.Sign(System.Text.Encoding.UTF8.GetBytes(secret), method.Method, uri.PathAndQuery, account, DateTimeOffset.UtcNow.ToUnixTimeSeconds());

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Headers.TryGetValues(GatewayProof.AccountHeader, out var accounts) && !request.Headers.Contains(GatewayProof.Header))
            request.Headers.Add(GatewayProof.Header, Proof(secret, request.Method, request.RequestUri!, accounts.Single()));
        return base.SendAsync(request, cancellationToken);
    }
}
