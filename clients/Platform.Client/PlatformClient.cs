using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Client;

/// <summary>
/// The public HTTP API of a Platform gateway, typed. One instance per base URL and key; it is safe to share
/// between threads. Every non-success answer throws <see cref="PlatformApiException"/>. Made with a base URL,
/// it waits out the gateway's rate limit (429 with Retry-After) and sends the request again, up to three times.
/// </summary>
public sealed partial class PlatformClient : IDisposable
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <summary>Talks to <paramref name="baseUrl"/> (the gateway) as the account of <paramref name="apiKey"/>, if any.</summary>
    public PlatformClient(Uri baseUrl, string? apiKey)
        : this(new HttpClient(new RateLimitRetries(new HttpClientHandler())) { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan }, apiKey)
    {
        // Uploads and event streams last as long as they need to; callers bound them with cancellation tokens.
        _ownsHttp = true;
    }

    /// <summary>Uses <paramref name="http"/> as given (no waiting out 429s): its BaseAddress must be the gateway's URL.</summary>
    public PlatformClient(HttpClient http, string? apiKey = null)
    {
        ArgumentNullException.ThrowIfNull(http.BaseAddress, "http.BaseAddress");
        _http = http;
        if (apiKey is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public Uri BaseAddress => _http.BaseAddress!;

    /// <summary>
    /// How often <see cref="WatchAsync"/> and <see cref="WatchBatchAsync"/> poll the job or batch when the gateway
    /// has no event stream, and wait before resuming a dropped one.
    /// </summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    public void Dispose()
    {
        if (_ownsHttp)
            _http.Dispose();
    }

    // Paths are relative ("v1/...") so a base URL with a path prefix keeps it.
    private async Task<T> GetAsync<T>(string path, CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync<T>(response, ct);
    }

    private async Task<T> PostAsync<T>(string path, object body, CancellationToken ct, string? idempotencyKey = null)
    {
        using var response = await PostAsync(path, body, idempotencyKey, ct);
        return await ReadAsync<T>(response, ct);
    }

    private async Task<HttpResponseMessage> PostAsync(string path, object? body, string? idempotencyKey, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
        if (body is not null)
            request.Content = JsonContent.Create(body, body.GetType(), options: Json);
        if (idempotencyKey is not null)
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken ct)
    {
        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<T>(Json, ct)
            ?? throw new PlatformApiException(response.StatusCode, null, $"the gateway answered {(int)response.StatusCode} with an empty body");
    }

    /// <summary>Throws <see cref="PlatformApiException"/> with the parsed problem for any non-success answer.</summary>
    internal static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        var text = response.Content is null ? "" : await response.Content.ReadAsStringAsync(ct);
        Problem? problem = null;
        try
        {
            if (text.Length > 0 && text.TrimStart().StartsWith('{'))
                problem = JsonSerializer.Deserialize<Problem>(text, Json);
        }
        catch (JsonException)
        {
            // Not a problem document (a proxy's error page, say): the status and text below still say what happened.
        }
        // A problem without the platform's own type (a framework 404 for a path this gateway lacks, say) names the
        // request, so "Not Found" says what was not found.
        var request = response.RequestMessage is { RequestUri: { } uri } r ? $" ({r.Method} {uri.AbsolutePath})" : "";
        var retryAfter = RateLimitRetries.RetryAfter(response);
        if (problem is null)
            throw new PlatformApiException(response.StatusCode, null, Describe(response.StatusCode, text) + request) { RetryAfter = retryAfter };
        throw new PlatformApiException(response.StatusCode, problem,
            problem.Type?.StartsWith("urn:platform:problem:", StringComparison.Ordinal) == true ? null : PlatformApiException.Format(response.StatusCode, problem) + request)
        { RetryAfter = retryAfter };
    }

    private static string Describe(HttpStatusCode status, string body)
    {
        var reason = $"{(int)status} {status}";
        body = body.Trim();
        return body.Length == 0 ? reason : $"{reason}: {(body.Length <= 200 ? body : body[..200] + "...")}";
    }

    private static string Escape(string segment) => Uri.EscapeDataString(segment);
}
