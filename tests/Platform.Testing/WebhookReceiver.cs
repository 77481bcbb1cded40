using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Platform.Testing;

/// <summary>
/// A webhook receiver on this machine: records every POST it gets and answers each with the next status of
/// <c>answers</c> (200 once they run out). Verifies signatures as a receiver would, by Standard Webhooks' rule,
/// written out here rather than borrowed from the service.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    /// <param name="At">When it arrived, by this machine's clock (to order the requests of several receivers).</param>
    public sealed record Received(string Id, long Timestamp, string Signature, string ContentType, string Body, DateTime At)
    {
        public JsonElement Json => JsonDocument.Parse(Body).RootElement;

        /// <summary>Whether the signature is the HMAC-SHA256 of id.timestamp.body under the secret's bytes.</summary>
        public bool SignedWith(string secret)
        {
            var key = Convert.FromBase64String(secret["whsec_".Length..]);
            var expected = Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{Id}.{Timestamp}.{Body}")));
            return Signature.Split(' ').Contains("v1," + expected);
        }
    }

    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<int> _answers;
    private readonly Task _loop;

    public WebhookReceiver(params int[] answers)
    {
        _answers = new ConcurrentQueue<int>(answers);
        var port = FreePort.Next();
        Url = $"http://127.0.0.1:{port}/hooks/platform";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public string Url { get; }

    public ConcurrentQueue<Received> Requests { get; } = new();

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            // A sender that gives up mid-request (its timeout) must not stop the receiver for the requests after it.
            try
            {
                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var body = await reader.ReadToEndAsync();
                var headers = context.Request.Headers;
                Requests.Enqueue(new Received(headers["webhook-id"] ?? "", long.TryParse(headers["webhook-timestamp"], out var t) ? t : -1,
                    headers["webhook-signature"] ?? "", context.Request.ContentType ?? "", body, DateTime.UtcNow));
                context.Response.StatusCode = _answers.TryDequeue(out var status) ? status : 200;
                context.Response.Close();
            }
            catch (Exception ex) when (ex is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
            {
                context.Response.Abort();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        await _loop;
    }
}
