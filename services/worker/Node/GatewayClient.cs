using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Node;

/// <summary>
/// The node reaches the network's data the way any client does: through the public gateway with its key.
/// A blob is named by its content, so reading or pinning one twice is harmless: when the gateway or the storage behind
/// it is restarting or overloaded (no connection, 408, 429, 502, 503, 504), a request is sent again with backoff for up
/// to <see cref="WorkerOptions.BlobRetryWindow"/>. Meanwhile the attempt is listed in every heartbeat and keeps its
/// lease, so a storage restart delays a job instead of using up its attempts.
/// </summary>
public sealed class GatewayClient(HttpClient http, IOptions<WorkerOptions> options, ILogger<GatewayClient> logger)
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The blob's response with only its headers read, so a caller can look at the size before taking the body;
    /// null when no blob has that CID.
    /// </summary>
    public async Task<HttpResponseMessage?> OpenBlobAsync(Cid cid, CancellationToken ct)
    {
        var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri($"v1/blobs/{cid}", UriKind.Relative)),
            HttpCompletionOption.ResponseHeadersRead, ct);
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

    public Task<Cid> PutBlobAsync(byte[] bytes, CancellationToken ct) => PutBlobAsync(() => new ByteArrayContent(bytes), ct);

    /// <summary>Pins a tensor as .npy, written straight into the request (a large output is never one array here).</summary>
    public Task<Cid> PutTensorAsync(NpyArray tensor, CancellationToken ct) => PutBlobAsync(() => new NpyContent(tensor), ct);

    private async Task<Cid> PutBlobAsync(Func<HttpContent> body, CancellationToken ct)
    {
        using var response = await SendAsync(() =>
        {
            var content = body();
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            return new HttpRequestMessage(HttpMethod.Post, new Uri("v1/blobs", UriKind.Relative)) { Content = content };
        }, HttpCompletionOption.ResponseContentRead, ct);
        response.EnsureSuccessStatusCode();
        var pinned = (await response.Content.ReadFromJsonAsync<Pinned>(ct))!;
        return Cid.Parse(pinned.Cid);
    }

    private static bool Transient(HttpStatusCode status) => status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests
        or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    // Sends a fresh request (a request message can be sent only once) until the answer is not transient or the window is
    // spent; then the last answer is returned, or the last connection failure thrown, as if there had been no retry.
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> request, HttpCompletionOption completion, CancellationToken ct)
    {
        var window = options.Value.BlobRetryWindow;
        var elapsed = Stopwatch.StartNew();
        var delay = FirstDelay;
        for (var tries = 1; ; tries++)
        {
            string failure, what;
            TimeSpan wait;
            using (var message = request())
            {
                what = $"{message.Method} {message.RequestUri}";
                try
                {
                    var response = await http.SendAsync(message, completion, ct);
                    // The gateway's rate limit says when to come back; a longer wait than that is kept.
                    wait = response.Headers.RetryAfter?.Delta is { } after && after > delay ? after : delay;
                    if (!Transient(response.StatusCode) || elapsed.Elapsed + wait > window)
                        return response;
                    failure = $"{(int)response.StatusCode} {response.ReasonPhrase}";
                    response.Dispose();
                }
                catch (HttpRequestException ex) when (!ct.IsCancellationRequested && elapsed.Elapsed + delay <= window)
                {
                    wait = delay;
                    failure = ex.Message;
                }
            }
            logger.LogWarning("{Request} through the gateway failed ({Failure}); try {Try} in {Wait:F1} s", what, failure, tries + 1, wait.TotalSeconds);
            await Task.Delay(wait, ct);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxDelay.Ticks));
        }
    }
}

/// <summary>A tensor as an .npy request body, serialized as it is sent.</summary>
internal sealed class NpyContent(NpyArray tensor) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => Npy.WriteAsync(stream, tensor);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        Npy.WriteAsync(stream, tensor, cancellationToken);

    protected override bool TryComputeLength(out long length)
    {
        length = Npy.ByteLength(tensor);
        return true;
    }
}
