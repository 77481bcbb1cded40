using System.Diagnostics;
using System.Net;
using Platform.Client;
using Platform.Contracts.Api;

namespace Platform.Cli.Tests;

/// <summary>The SDK, and so the CLI, waits out the gateway's rate limit (429 with Retry-After) and asks again.</summary>
public sealed class RateLimitRetryTests
{
    private const string Limited = """
        {"type":"urn:platform:problem:rate-limited","title":"Too many requests","status":429,"detail":"this key is over its request rate; retry after 1 s"}
        """;

    private const string Pending = """{"id":"job_1","kernel":"vector-add","status":"pending","inputs":{},"params":{},"outputs":null,"attempts":[],"createdAt":"2026-01-02T03:04:05+00:00"}""";

    private static readonly SubmitJobRequest Request = new()
    {
        Kernel = "vector-add",
        Inputs = new Dictionary<string, string> { ["a"] = "bafkreia", ["b"] = "bafkreib" },
    };

    [Fact]
    public async Task A_submit_answered_429_is_sent_again_after_its_Retry_After_with_the_same_body_and_key()
    {
        var posts = 0;
        using var gateway = new CannedGateway((route, _) => route != "POST /v1/jobs" ? CannedAnswer.NotFound
            : Interlocked.Increment(ref posts) == 1 ? CannedAnswer.Problem(429, Limited) with { RetryAfter = "1" }
            : new CannedAnswer(202, "application/json", Pending));
        using var client = new PlatformClient(new Uri(gateway.Url), "pk_test");

        var waited = Stopwatch.StartNew();
        var job = await client.SubmitJobAsync(Request, idempotencyKey: "submit-1");

        Assert.Equal("job_1", job.Id);
        var bodies = gateway.Received("POST /v1/jobs");
        Assert.Equal(2, bodies.Count);
        Assert.Equal(bodies[0], bodies[1]);
        Assert.Contains("\"kernel\":\"vector-add\"", bodies[1], StringComparison.Ordinal);
        // The same key on the retry: a new or missing one would let a 429 that was in fact accepted make a second job.
        Assert.Equal(["submit-1", "submit-1"], gateway.ReceivedHeader("POST /v1/jobs", "Idempotency-Key"));
        Assert.True(waited.Elapsed >= TimeSpan.FromSeconds(0.95), $"asked again after {waited.Elapsed.TotalSeconds:F2} s, before the 1 s Retry-After");
    }

    [Fact]
    public async Task A_key_still_limited_after_three_retries_gets_the_problem_and_how_long_to_wait()
    {
        using var gateway = new CannedGateway((_, _) => CannedAnswer.Problem(429, Limited) with { RetryAfter = "0" });
        using var client = new PlatformClient(new Uri(gateway.Url), "pk_test");

        var refused = await Assert.ThrowsAsync<PlatformApiException>(() => client.GetJobAsync("job_1"));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.Zero, refused.RetryAfter);
        Assert.Equal("urn:platform:problem:rate-limited", refused.Problem?.Type);
        Assert.Equal(4, gateway.Received("GET /v1/jobs/job_1").Count);
    }

    [Fact]
    public async Task A_streamed_upload_answered_429_is_not_sent_again()
    {
        using var gateway = new CannedGateway((_, _) => CannedAnswer.Problem(429, Limited) with { RetryAfter = "0" });
        using var client = new PlatformClient(new Uri(gateway.Url), "pk_test");
        using var content = new MemoryStream([1, 2, 3]);

        var refused = await Assert.ThrowsAsync<PlatformApiException>(() => client.PutBlobAsync(content));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Single(gateway.Received("POST /v1/blobs"));
    }
}
