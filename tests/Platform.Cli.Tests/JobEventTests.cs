using System.Net;
using System.Text;
using Platform.Client;

namespace Platform.Cli.Tests;

public sealed class JobEventTests
{
    private const string Stream1 = """
        : keep-alive

        id: 1
        event: status
        data: {"jobId":"job_a","status":"queued","attemptId":null,"workerId":null,"attemptStatus":null,"reason":null,"detail":null,"occurredAt":"2026-01-02T03:04:05+00:00"}

        id: 2
        event: status
        data: {"jobId":"job_a","status":"running","attemptId":"att_1","workerId":"wrk_1","attemptStatus":"running","reason":null,"detail":null,"occurredAt":"2026-01-02T03:04:06+00:00"}

        event: progress
        data: {"jobId":"job_a","attemptId":"att_1","fraction":0.25}

        event: something-new
        data: {"jobId":"job_a"}

        : keep-alive


        """;

    private const string Stream2 = """
        event: progress
        data: {"jobId":"job_a","attemptId":"att_1","fraction":0.75}

        id: 3
        event: status
        data: {"jobId":"job_a","status":"completed","attemptId":"att_1","workerId":"wrk_1","attemptStatus":"accepted","reason":null,"detail":null,"occurredAt":"2026-01-02T03:04:07+00:00"}


        """;

    [Fact]
    public async Task Stream_is_read_into_status_and_progress_events_skipping_comments_and_unknown_types()
    {
        var events = await JobEventStream.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(Stream1))).ToListAsync();

        Assert.Equal(3, events.Count);
        var (queued, id1) = events[0];
        Assert.Equal("1", id1);
        Assert.Equal(new JobStatusEvent { JobId = "job_a", Status = "queued", OccurredAt = DateTimeOffset.Parse("2026-01-02T03:04:05+00:00", System.Globalization.CultureInfo.InvariantCulture) }, queued);
        var running = Assert.IsType<JobStatusEvent>(events[1].Event);
        Assert.Equal(("running", "wrk_1", "att_1", "running"), (running.Status, running.WorkerId, running.AttemptId, running.AttemptStatus));
        var progress = Assert.IsType<JobProgressEvent>(events[2].Event);
        Assert.Null(events[2].Id);
        Assert.Equal(0.25, progress.Fraction);
    }

    [Fact]
    public async Task Watch_resumes_a_dropped_stream_from_the_last_event_id_and_ends_at_the_terminal_status()
    {
        var streams = new Queue<string>([Stream1, Stream2]);
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.OK, streams.Dequeue(), "text/event-stream"));
        using var client = gateway.Client();

        var events = await client.WatchAsync("job_a").ToListAsync();

        Assert.Equal(["queued", "running", "0.25", "0.75", "completed"], events.Select(Describe));
        Assert.Equal([1L, 2L, 3L], events.OfType<JobStatusEvent>().Select(e => e.Sequence!.Value));
        Assert.Equal(2, gateway.Requests.Count);
        Assert.False(gateway.Requests[0].Headers.Contains("Last-Event-ID"));
        Assert.Equal(["2"], gateway.Requests[1].Headers.GetValues("Last-Event-ID"));
        Assert.All(gateway.Requests, r => Assert.Equal("http://gateway.test/v1/jobs/job_a/events", r.RequestUri!.ToString()));
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound)] // a gateway without the event stream
    [InlineData(HttpStatusCode.TooManyRequests)] // the account has as many streams open as it may
    public async Task Watch_polls_the_job_when_the_gateway_has_no_event_stream_for_it(HttpStatusCode refused)
    {
        var views = new Queue<string>([JobJson("queued", null), JobJson("running", 0.5), JobJson("running", 0.5), JobJson("completed", 1)]);
        using var gateway = new FakeGateway(request => request.RequestUri!.AbsolutePath.EndsWith("/events", StringComparison.Ordinal)
            ? new HttpResponseMessage(refused)
            : FakeGateway.Json(views.Dequeue()));
        using var client = gateway.Client();

        var events = await client.WatchAsync("job_a").ToListAsync();

        Assert.Equal(["queued", "running", "0.5", "completed"], events.Select(Describe));
        Assert.Equal("wrk_1", ((JobStatusEvent)events[^1]).WorkerId);
        Assert.Equal(5, gateway.Requests.Count); // the stream once, then four polls
    }

    [Fact]
    public async Task Watch_of_an_unknown_job_reports_the_problem()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.NotFound,
            """{"type":"urn:platform:problem:job-not-found","title":"Job not found","status":404,"detail":"no job 'job_x' for this account"}""",
            "application/problem+json"));
        using var client = gateway.Client();

        var error = await Assert.ThrowsAsync<PlatformApiException>(async () => await client.WatchAsync("job_x").ToListAsync());

        Assert.Equal("job-not-found", error.Problem!.Slug);
    }

    private static string Describe(JobEvent e) => e switch
    {
        JobStatusEvent s => s.Status,
        JobProgressEvent p => p.Fraction.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "?",
    };

    private static string JobJson(string status, double? progress) => $$"""
        {"id":"job_a","kernel":"vector-add","status":"{{status}}","inputs":{},"params":{},"outputs":null,"cost":null,
         "progress":{{(progress is { } p ? p.ToString(System.Globalization.CultureInfo.InvariantCulture) : "null")}},
         "attempts":[{"attemptId":"att_1","workerId":"wrk_1","status":"running","signature":null}],
         "createdAt":"2026-01-02T03:04:05+00:00","completedAt":null,"error":null}
        """;
}
