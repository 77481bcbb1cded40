using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;
using Yarp.ReverseProxy.Model;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// What the gateway itself asks storage: the first bytes of a blob, to check a job's inputs at submit. The instance
/// is chosen like a forwarded request's (YARP's state of the storage cluster and its load-balancing policy); an
/// unreachable one is skipped for the next.
/// </summary>
public sealed class StorageClient(HttpClient http, UpstreamForwarder upstreams)
{
    public sealed record Prefix(byte[] Bytes, long TotalSize);

    /// <summary>Up to <paramref name="length"/> leading bytes of the blob and its whole size, or null when it is not pinned.</summary>
    public async Task<Prefix?> ReadPrefixAsync(Cid cid, int length, CancellationToken ct)
    {
        var cluster = upstreams.Cluster(Upstream.Storage);
        var tried = new List<DestinationState>();
        // Load-balancing policies take the request being balanced; this one is the gateway's own, not a caller's.
        var own = new DefaultHttpContext();
        HttpRequestException? failure = null;
        while (upstreams.Pick(own, cluster, tried) is { } destination)
        {
            tried.Add(destination);
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(destination.Model.Config.Address), $"/v1/blobs/{cid}"));
            request.Headers.Range = new RangeHeaderValue(0, length - 1);
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, ct);
            }
            catch (HttpRequestException ex)
            {
                failure = ex;
                continue;
            }
            using var _ = response;
            if (response.StatusCode == HttpStatusCode.NotFound)
                return null;
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
                return new Prefix([], 0); // an empty blob has no first byte
            response.EnsureSuccessStatusCode();
            var bytes = await response.Content.ReadAsByteArrayAsync(ct);
            return new Prefix(bytes, response.Content.Headers.ContentRange?.Length ?? bytes.Length);
        }
        throw failure ?? new HttpRequestException("no storage instance is configured");
    }
}
