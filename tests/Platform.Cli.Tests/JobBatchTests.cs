using System.Net;
using System.Text.Json;
using Platform.Client;
using Platform.Contracts.Api;

namespace Platform.Cli.Tests;

/// <summary>The SDK's job batches against a fake gateway: what is sent, what is read, and how the batch stream is followed.</summary>
public sealed class JobBatchTests
{
    private const string Batch = """
        {"id":"bat_one","createdAt":"2026-12-04T10:00:00Z","total":3,"finished":false,"counts":{"pending":2,"failed":1},
         "jobIds":["job_a","job_b","job_c"]}
        """;

    private static SubmitJobRequest Entry(string kernel) => new()
    {
        Kernel = kernel,
        Inputs = new Dictionary<string, string> { ["a"] = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" },
    };

    [Fact]
    public async Task Submit_posts_the_entries_in_order_with_the_key_and_reads_the_batch()
    {
        string? sent = null;
        using var gateway = new FakeGateway(request =>
        {
            sent = request.Content!.ReadAsStringAsync().GetAwaiter().GetResult();
            return FakeGateway.Text(HttpStatusCode.Accepted, Batch, "application/json");
        });
        using var client = gateway.Client();

        var batch = await client.SubmitJobsAsync([Entry("vector-add"), Entry("matmul"), Entry("knn")], "key-1");

        var request = Assert.Single(gateway.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal("http://gateway.test/v1/jobs:batch", request.RequestUri!.ToString());
        Assert.Equal(["key-1"], request.Headers.GetValues("Idempotency-Key"));
        using var body = JsonDocument.Parse(sent!);
        Assert.Equal(["vector-add", "matmul", "knn"], body.RootElement.GetProperty("jobs").EnumerateArray().Select(j => j.GetProperty("kernel").GetString()));
        Assert.Equal(("bat_one", 3, false), (batch.Id, batch.Total, batch.Finished));
        Assert.Equal(DateTimeOffset.Parse("2026-12-04T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), batch.CreatedAt);
        Assert.Equal(["job_a", "job_b", "job_c"], batch.JobIds);
        Assert.Equal((2, 1, 0, 1), (batch.Count("pending"), batch.Count("failed"), batch.Count("completed"), batch.Done));
    }

    [Fact]
    public async Task A_refused_batch_names_the_bad_entry_whether_or_not_the_errors_do()
    {
        var answers = new Queue<HttpResponseMessage>([
            FakeGateway.Text(HttpStatusCode.UnprocessableEntity,
                """{"type":"urn:platform:problem:input-not-found","title":"Input not found","status":422,"detail":"blob bafkx is not pinned","index":3}""",
                "application/problem+json"),
            FakeGateway.Text(HttpStatusCode.BadRequest,
                """{"type":"urn:platform:problem:validation","title":"The request is not valid","status":400,"detail":"entry 1 is not a job","errors":{"jobs[1].kernel":["unknown kernel 'nope'"]},"index":1}""",
                "application/problem+json"),
        ]);
        using var gateway = new FakeGateway(_ => answers.Dequeue());
        using var client = gateway.Client();

        var missing = await Assert.ThrowsAsync<PlatformApiException>(() => client.SubmitJobsAsync([Entry("vector-add")]));
        var invalid = await Assert.ThrowsAsync<PlatformApiException>(() => client.SubmitJobsAsync([Entry("vector-add")]));

        Assert.Equal(3, missing.Problem!.Index);
        Assert.Equal("Input not found: blob bafkx is not pinned (at jobs[3])", missing.Message);
        Assert.Equal(1, invalid.Problem!.Index);
        Assert.Equal("The request is not valid: entry 1 is not a job (jobs[1].kernel: unknown kernel 'nope')", invalid.Message);
    }

    // The first stream drops after two changes; the resumed one repeats the second (as the contract allows), then
    // brings the rest and done. Anything after done must not be read.
    private const string Dropped = """
        : keep-alive

        id: 1
        event: status
        data: {"jobId":"job_a","version":0,"status":"pending","occurredAt":"2026-12-04T10:00:00+00:00"}

        id: 2
        event: status
        data: {"jobId":"job_b","version":0,"status":"pending","occurredAt":"2026-12-04T10:00:00+00:00"}


        """;

    private const string Resumed = """
        id: 2
        event: status
        data: {"jobId":"job_b","version":0,"status":"pending","occurredAt":"2026-12-04T10:00:00+00:00"}

        id: 3
        event: status
        data: {"jobId":"job_a","version":1,"status":"completed","occurredAt":"2026-12-04T10:00:01+00:00"}

        : keep-alive

        id: 4
        event: status
        data: {"jobId":"job_b","version":1,"status":"failed","reason":"worker_lost","occurredAt":"2026-12-04T10:00:02+00:00"}

        id: 5
        event: done
        data: {"id":"bat_one","createdAt":"2026-12-04T10:00:00Z","total":2,"finished":true,"counts":{"completed":1,"failed":1},"jobIds":["job_a","job_b"]}

        id: 6
        event: status
        data: {"jobId":"job_z","version":9,"status":"running","occurredAt":"2026-12-04T10:00:03+00:00"}


        """;

    [Fact]
    public async Task Watch_resumes_a_dropped_batch_stream_from_the_last_event_id_drops_repeats_and_ends_at_done()
    {
        var streams = new Queue<string>([Dropped, Resumed]);
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.OK, streams.Dequeue(), "text/event-stream"));
        using var client = gateway.Client();

        var events = await client.WatchBatchAsync("bat_one").ToListAsync();

        Assert.Equal(["job_a pending", "job_b pending", "job_a completed", "job_b failed"], events.Select(e => $"{e.JobId} {e.Status}"));
        Assert.Equal([1L, 2L, 3L, 4L], events.Select(e => e.Sequence!.Value));
        Assert.Equal("worker_lost", events[^1].Reason);
        Assert.Equal(2, gateway.Requests.Count);
        Assert.False(gateway.Requests[0].Headers.Contains("Last-Event-ID"));
        Assert.Equal(["2"], gateway.Requests[1].Headers.GetValues("Last-Event-ID"));
        Assert.All(gateway.Requests, r => Assert.Equal("http://gateway.test/v1/batches/bat_one/events", r.RequestUri!.ToString()));
    }

    [Fact]
    public async Task Watch_polls_the_batch_until_it_finishes_when_the_gateway_has_no_batch_stream()
    {
        var views = new Queue<string>([Batch, Batch, Batch.Replace("\"finished\":false", "\"finished\":true", StringComparison.Ordinal)]);
        using var gateway = new FakeGateway(request => request.RequestUri!.AbsolutePath.EndsWith("/events", StringComparison.Ordinal)
            ? new HttpResponseMessage(HttpStatusCode.NotFound)
            : FakeGateway.Json(views.Dequeue()));
        using var client = gateway.Client();

        var events = await client.WatchBatchAsync("bat_one").ToListAsync();

        Assert.Empty(events);
        Assert.Empty(views);
        Assert.Equal(4, gateway.Requests.Count); // the stream once, then three polls
        Assert.Equal("http://gateway.test/v1/batches/bat_one", gateway.Requests[^1].RequestUri!.ToString());
    }

    [Fact]
    public async Task Watch_of_an_unknown_batch_reports_the_problem()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.NotFound,
            """{"type":"urn:platform:problem:batch-not-found","title":"Batch not found","status":404,"detail":"no batch 'bat_x' for this account"}""",
            "application/problem+json"));
        using var client = gateway.Client();

        var error = await Assert.ThrowsAsync<PlatformApiException>(async () => await client.WatchBatchAsync("bat_x").ToListAsync());

        Assert.Equal("batch-not-found", error.Problem!.Slug);
    }
}
