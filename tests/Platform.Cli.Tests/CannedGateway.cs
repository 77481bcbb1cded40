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
    private readonly IReadOnlyDictionary<string, IReadOnlyList<(int Status, string Body)>> _answers;
    private readonly Dictionary<string, int> _asked = [];

    /// <param name="answers">Path (such as /v1/network) to the JSON it answers.</param>
    public CannedGateway(IReadOnlyDictionary<string, string> answers)
        : this(answers.ToDictionary(a => a.Key, a => (IReadOnlyList<(int, string)>)[(200, a.Value)]))
    {
    }

    /// <param name="script">Path to the answers to its first, second... request; the last one repeats. A status
    /// other than 200 is sent as a problem.</param>
    public CannedGateway(IReadOnlyDictionary<string, IReadOnlyList<(int Status, string Body)>> script)
    {
        _answers = script;
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
            var path = context.Request.Url!.AbsolutePath;
            var (status, body) = context.Request.HttpMethod == "GET" && _answers.TryGetValue(path, out var answers)
                ? answers[Math.Min(_asked[path] = _asked.GetValueOrDefault(path) + 1, answers.Count) - 1]
                : (404, """{"type":"urn:platform:problem:not-found","title":"Not found","status":404,"detail":"no such route in this fake"}""");
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.StatusCode = status;
            context.Response.ContentType = status == 200 ? "application/json" : "application/problem+json";
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
