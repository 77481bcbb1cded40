using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;

namespace Platform.Gateway.Forwarding;

/// <summary>What the gateway itself asks storage: the first bytes of a blob, to check a job's inputs at submit.</summary>
public sealed class StorageClient(HttpClient http)
{
    /// <summary>Up to <paramref name="length"/> leading bytes of the blob, or null when it is not pinned.</summary>
    public async Task<byte[]?> ReadPrefixAsync(Cid cid, int length, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"/v1/blobs/{cid}", UriKind.Relative));
        request.Headers.Range = new RangeHeaderValue(0, length - 1);
        using var response = await http.SendAsync(request, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
            return null;
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            return []; // an empty blob has no first byte
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsByteArrayAsync(ct);
    }
}
