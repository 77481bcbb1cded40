using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>The node reaches the network's data the way any client does: through the public gateway with its key.</summary>
public sealed class GatewayClient(HttpClient http)
{
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
