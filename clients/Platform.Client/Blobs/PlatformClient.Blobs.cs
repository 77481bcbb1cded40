using System.Net;
using System.Net.Http.Headers;
using Platform.Contracts;
using Platform.Contracts.Api;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>
    /// Pins the bytes of <paramref name="content"/> (read from its current position to its end, streamed) and
    /// returns their CID. <paramref name="progress"/> gets the bytes sent so far.
    /// </summary>
    [ApiOperation("POST /v1/blobs")]
    public async Task<PinResponse> PutBlobAsync(Stream content, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        using var body = new ProgressStreamContent(content, progress);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await _http.PostAsync(new Uri("v1/blobs", UriKind.Relative), body, ct);
        return await ReadAsync<PinResponse>(response, ct);
    }

    /// <summary>
    /// Writes the blob <paramref name="cid"/> to <paramref name="destination"/> as it arrives and checks it
    /// against the CID on the way (an incremental SHA-256); throws <see cref="CidMismatchException"/> at the
    /// end when they differ, so the bytes written must be discarded then. Returns the bytes written.
    /// <paramref name="progress"/> gets the bytes received so far.
    /// </summary>
    public async Task<long> GetBlobAsync(string cid, Stream destination, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        await using var blob = await OpenBlobAsync(cid, progress, ct);
        await blob.Stream.CopyToAsync(destination, ct);
        return blob.Stream.BytesRead;
    }

    /// <summary>
    /// Opens the blob <paramref name="cid"/> for reading; its stream throws <see cref="CidMismatchException"/>
    /// when read to the end if the bytes do not hash to the CID. <see cref="BlobDownload.Length"/> is the size
    /// the gateway announced.
    /// </summary>
    [ApiOperation("GET /v1/blobs/{cid}")]
    public async Task<BlobDownload> OpenBlobAsync(string cid, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        var parsed = ParseCid(cid);
        var response = await _http.GetAsync(new Uri($"v1/blobs/{parsed}", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct);
        try
        {
            await EnsureSuccessAsync(response, ct);
            var stream = new CidVerifyingStream(await response.Content.ReadAsStreamAsync(ct), parsed, progress);
            return new BlobDownload(response, stream, response.Content.Headers.ContentLength);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>The blob's size, or null when nothing is pinned under <paramref name="cid"/>.</summary>
    [ApiOperation("HEAD /v1/blobs/{cid}")]
    public async Task<BlobHead?> HeadBlobAsync(string cid, CancellationToken ct = default)
    {
        var parsed = ParseCid(cid);
        using var request = new HttpRequestMessage(HttpMethod.Head, new Uri($"v1/blobs/{parsed}", UriKind.Relative));
        using var response = await _http.SendAsync(request, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
            return null;
        await EnsureSuccessAsync(response, ct);
        return new BlobHead(parsed.Value, response.Content.Headers.ContentLength ?? 0);
    }

    [ApiOperation("GET /v1/blobs/{cid}/pin")]
    public Task<PinStatusResponse> GetPinStatusAsync(string cid, CancellationToken ct = default) =>
        GetAsync<PinStatusResponse>($"v1/blobs/{ParseCid(cid)}/pin", ct);

    /// <summary>The Merkle proof that the store holds 1 MiB chunk <paramref name="chunk"/> of the blob.</summary>
    [ApiOperation("GET /v1/blobs/{cid}/proof")]
    public Task<ProofResponse> GetProofAsync(string cid, int chunk, CancellationToken ct = default) =>
        GetAsync<ProofResponse>($"v1/blobs/{ParseCid(cid)}/proof?chunk={chunk}", ct);

    /// <summary>Pins a manifest naming <paramref name="request"/>'s blobs; the dataset's id is that manifest's CID.</summary>
    [ApiOperation("POST /v1/datasets")]
    public Task<DatasetView> CreateDatasetAsync(CreateDatasetRequest request, CancellationToken ct = default) =>
        PostAsync<DatasetView>("v1/datasets", request, ct);

    [ApiOperation("GET /v1/datasets/{cid}")]
    public Task<DatasetView> GetDatasetAsync(string cid, CancellationToken ct = default) =>
        GetAsync<DatasetView>($"v1/datasets/{ParseCid(cid)}", ct);

    // A malformed CID is the caller's mistake: Parse's FormatException says so before the network is asked.
    private static Cid ParseCid(string cid) => Cid.Parse(cid);
}

/// <summary>An open download: read <see cref="Stream"/> to its end before trusting the bytes.</summary>
public sealed class BlobDownload(HttpResponseMessage response, CidVerifyingStream stream, long? length) : IAsyncDisposable
{
    public CidVerifyingStream Stream { get; } = stream;

    /// <summary>The size the gateway announced (Content-Length), when it did.</summary>
    public long? Length { get; } = length;

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        response.Dispose();
    }
}
