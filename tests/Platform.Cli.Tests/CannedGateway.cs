using System.Net;
using System.Text;

namespace Platform.Cli.Tests;

/// <summary>
/// A gateway on a real port that answers GET routes with canned JSON (anything else: 404), so the command line
/// can be run in process against answers a test writes out in full.
/// </summary>
public sealed class CannedGateway : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _serving;
    private readonly IReadOnlyDictionary<string, string> _answers;

    /// <param name="answers">Path (such as /v1/network) to the JSON it answers.</param>
    public CannedGateway(IReadOnlyDictionary<string, string> answers)
    {
        _answers = answers;
        Url = $"http://127.0.0.1:{Platform.Testing.FreePort.Next()}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _serving = Task.Run(ServeAsync);
    }

    public string Url { get; }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return; // stopped
            }
            string? json = null;
            var found = context.Request.HttpMethod == "GET" && _answers.TryGetValue(context.Request.Url!.AbsolutePath, out json);
            var bytes = Encoding.UTF8.GetBytes(found ? json!
                : """{"type":"urn:platform:problem:not-found","title":"Not found","status":404,"detail":"no such route in this fake"}""");
            context.Response.StatusCode = found ? 200 : 404;
            context.Response.ContentType = found ? "application/json" : "application/problem+json";
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _serving.Wait(TimeSpan.FromSeconds(5));
    }
}
