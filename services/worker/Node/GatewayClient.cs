using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>The node reaches the network's data the way any client does: through the public gateway with its key.</summary>
public sealed class GatewayClient(HttpClient http)
{
    public sealed record Account(string AccountId, string Role);

    public async Task<Account> GetAccountAsync(CancellationToken ct)
    {
        using var response = await http.GetAsync(new Uri("v1/account", UriKind.Relative), ct);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            throw new InvalidOperationException("the gateway refused the operator key (Worker:OperatorKey)");
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Account>(ct))!;
    }

    /// <summary>
    /// The blob's response with only its headers read, so a caller can look at the size before taking the body;
    /// null when no blob has that CID.
    /// </summary>
    public async Task<HttpResponseMessage?> OpenBlobAsync(Cid cid, CancellationToken ct)
    {
        var response = await http.GetAsync(new Uri($"v1/blobs/{cid}", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            response.Dispose();
            return null;
        }
        try
        {
            response.EnsureSuccessStatusCode();
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private sealed record Pinned(string Cid);

    public async Task<Cid> PutBlobAsync(byte[] bytes, CancellationToken ct)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await http.PostAsync(new Uri("v1/blobs", UriKind.Relative), content, ct);
        response.EnsureSuccessStatusCode();
        var pinned = (await response.Content.ReadFromJsonAsync<Pinned>(ct))!;
        return Cid.Parse(pinned.Cid);
    }
}
