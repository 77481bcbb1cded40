using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;

namespace Platform.Gateway.Forwarding;

/// <summary>What the gateway itself asks storage: the first bytes of a blob, to check a job's inputs at submit.</summary>
public sealed class StorageClient(HttpClient http, Upstreams upstreams)
{
    public sealed record Prefix(byte[] Bytes, long TotalSize);

    /// <summary>Up to <paramref name="length"/> leading bytes of the blob and its whole size, or null when it is not pinned.</summary>
    public async Task<Prefix?> ReadPrefixAsync(Cid cid, int length, CancellationToken ct)
    {
        var instance = upstreams.Storage.Next();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(instance, $"/v1/blobs/{cid}"));
        request.Headers.Range = new RangeHeaderValue(0, length - 1);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, ct);
        }
        catch (HttpRequestException)
        {
            upstreams.Storage.ReportFailure(instance);
            throw;
        }
        using var _ = response;
        upstreams.Storage.ReportSuccess(instance);
        if (response.StatusCode == HttpStatusCode.NotFound)
            return null;
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            return new Prefix([], 0); // an empty blob has no first byte
        response.EnsureSuccessStatusCode();
        var bytes = await response.Content.ReadAsByteArrayAsync(ct);
        return new Prefix(bytes, response.Content.Headers.ContentRange?.Length ?? bytes.Length);
    }
}
