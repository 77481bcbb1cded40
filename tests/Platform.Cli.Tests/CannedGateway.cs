using System.Net;
using System.Text;

namespace Platform.Cli.Tests;

/// <summary>One answer of the fake gateway: a status, its content type, its body and any Retry-After.</summary>
public readonly record struct CannedAnswer(int Status, string ContentType, string Body, string? RetryAfter = null)
{
    public static CannedAnswer Json(string body) => new(200, "application/json", body);

    public static CannedAnswer Problem(int status, string body) => new(status, "application/problem+json", body);

    public static readonly CannedAnswer NotFound =
        Problem(404, """{"type":"urn:platform:problem:not-found","title":"Not found","status":404,"detail":"no such route in this fake"}""");
}

/// <summary>
/// A gateway on a real port that answers each request as the test says, and keeps every request it got, so the
/// command line can be run in process against answers a test writes out in full.
/// </summary>
public sealed class CannedGateway : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _serving;
    private readonly Func<string, string, CannedAnswer> _answer;
    private readonly List<(string Route, string Body, System.Collections.Specialized.NameValueCollection Headers)> _received = [];

    /// <param name="answer">The answer to a route ("GET /v1/network") and the request's body.</param>
    public CannedGateway(Func<string, string, CannedAnswer> answer)
    {
        _answer = answer;
        Url = $"http://127.0.0.1:{Platform.Testing.FreePort.Next()}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _serving = Task.Run(ServeAsync);
    }

    /// <param name="answers">Path (such as /v1/network) to the JSON its GET answers; anything else is 404.</param>
    public CannedGateway(IReadOnlyDictionary<string, string> answers)
        : this(answers.ToDictionary(a => a.Key, a => (IReadOnlyList<CannedAnswer>)[CannedAnswer.Json(a.Value)]))
    {
    }

    /// <param name="script">Path to the answers to its first, second... GET; the last one repeats.</param>
    public CannedGateway(IReadOnlyDictionary<string, IReadOnlyList<CannedAnswer>> script)
        : this(ScriptedAnswer(script))
    {
    }

    private static Func<string, string, CannedAnswer> ScriptedAnswer(IReadOnlyDictionary<string, IReadOnlyList<CannedAnswer>> script)
    {
        var asked = new Dictionary<string, int>();
        return (route, _) =>
        {
            if (!route.StartsWith("GET ", StringComparison.Ordinal) || !script.TryGetValue(route[4..], out var answers))
                return CannedAnswer.NotFound;
            lock (asked)
                return answers[Math.Min(asked[route] = asked.GetValueOrDefault(route) + 1, answers.Count) - 1];
        };
    }

    public string Url { get; }

    /// <summary>The bodies of the requests to <paramref name="route"/> ("PUT /v1/account/low-balance"), in order.</summary>
    public List<string> Received(string route)
    {
        lock (_received)
            return [.. _received.Where(r => r.Route == route).Select(r => r.Body)];
    }

    /// <summary>The values of header <paramref name="name"/> on the requests to <paramref name="route"/>, in order (null where absent).</summary>
    public List<string?> ReceivedHeader(string route, string name)
    {
        lock (_received)
            return [.. _received.Where(r => r.Route == route).Select(r => r.Headers[name])];
    }

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
                return; // stopped (before or during the wait)
            }
            var route = $"{context.Request.HttpMethod} {context.Request.Url!.AbsolutePath}";
            string body;
            using (var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8))
                body = await reader.ReadToEndAsync();
            lock (_received)
                _received.Add((route, body, context.Request.Headers));
            var answer = _answer(route, body);
            var bytes = Encoding.UTF8.GetBytes(answer.Body);
            context.Response.StatusCode = answer.Status;
            context.Response.ContentType = answer.ContentType;
            if (answer.RetryAfter is { } retryAfter)
                context.Response.AddHeader("Retry-After", retryAfter);
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
