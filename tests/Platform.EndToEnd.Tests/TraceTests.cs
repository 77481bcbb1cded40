using System.Diagnostics;
using System.Text.Json;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// One job, one trace: the W3C trace context crosses every HTTP hop, every message, every outbox and every batch, so
/// the spans the five services and the node write to their logs rebuild the job's timeline with
/// <c>./platform trace</c>'s script, from submission to payout.
/// </summary>
public sealed class TraceTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    private sealed record Span(double OffsetMs, double DurationMs, string Service, string Step, int Depth, string TraceId, string SpanId,
        string? ParentSpanId, string? JobId, string? Error);

    private static readonly string[] Services = ["gateway", "scheduler", "worker", "rewards", "storage"];

    [Fact]
    public async Task A_jobs_spans_from_all_five_services_form_one_trace_from_submission_to_payout()
    {
        const int seed = 2020;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        // The node logs each attempt it completes (a debug line): the line must name the job and its trace.
        var worker = await network.StartWorkerAsync(network.Operator.Key, settings: new() { ["Logging__LogLevel__Platform.Worker.Attempts"] = "Debug" });
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        // Inputs never seen before: the gateway reads their headers from storage at submission, the node its bytes.
        var job = await http.RunVectorAddAsync(random, 512);

        // Spans are written about a second after they end, each service's on its own: wait until every service's are in
        // and the payout's chain back to the submission is complete (no span whose parent has not been written yet).
        var spans = await Eventually.UntilAsync(async () => await TraceAsync(job.Id),
            s => Services.All(service => s.Any(span => span.Service == service)) && s.Any(span => span.Step == "consume Batch<Bundle<PaymentSettled>>")
                && Roots(s).Count() == 1,
            TimeSpan.FromSeconds(30), "spans of all five services and of the payout in the job's trace");
        foreach (var span in spans)
            output.WriteLine($"{span.OffsetMs,9:F1} {span.DurationMs,9:F1}  {span.Service,-10} {new string(' ', 2 * span.Depth)}{span.Step}");

        // One trace, one root: the request that submitted the job; every other span hangs from a span of the trace.
        var traceId = Assert.Single(spans.Select(s => s.TraceId).Distinct());
        var root = Assert.Single(Roots(spans));
        Assert.Equal(("gateway", job.Id), (root.Service, root.JobId));
        Assert.StartsWith("POST /v1/jobs", root.Step, StringComparison.Ordinal);
        Assert.All(spans, s => Assert.Null(s.Error));
        // Each hop of the job, in its own trace although each is handled in a batch with other jobs.
        string[] steps =
        [
            "group commit", "consume Batch<Bundle<JobSubmitted>>", "consume Batch<Bundle<JobFunded>>", "dispatch",
            "consume Batch<Bundle<JobCompleted>>", "consume Batch<Bundle<PaymentSettled>>",
        ];
        Assert.All(steps, step => Assert.Contains(spans, s => s.Step == step && s.JobId == job.Id));
        // Storage answered within the trace (the gateway's read of an input's header, the node's fetch of its bytes).
        Assert.Contains(spans, s => s.Service == "storage" && s.Step.StartsWith("GET", StringComparison.Ordinal));
        // The node's consume of its assignment names the job; the scheduler took the node's result in the same trace.
        Assert.Contains(spans, s => s.Service == "worker" && s.JobId == job.Id);
        Assert.Contains(spans, s => s.Service == "scheduler" && s.Step == "consume Batch<AttemptCompleted>" && s.JobId == job.Id);

        // The node's own log line about the attempt names the job and the trace.
        var completedLine = await Eventually.UntilAsync(() => Task.FromResult(worker.Log().Split('\n')
                .FirstOrDefault(l => l.Contains($"of {job.Id} completed", StringComparison.Ordinal))),
            l => l is not null, TimeSpan.FromSeconds(10), "the node's line for the completed attempt");
        var scopes = JsonDocument.Parse(completedLine!).RootElement.GetProperty("Scopes").EnumerateArray().ToList();
        Assert.Contains(scopes, s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("TraceId", out var t) && t.GetString() == traceId);
        Assert.Contains(scopes, s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("JobId", out var j) && j.GetString() == job.Id);

        // What `./platform trace JOB_ID` prints: the timeline, every service named.
        var printed = await RunTraceAsync(job.Id, json: false);
        output.WriteLine(printed);
        Assert.Contains($"trace {traceId}", printed, StringComparison.Ordinal);
        Assert.All(Services, service => Assert.Contains($"  {service}", printed, StringComparison.Ordinal));
    }

    private static IEnumerable<Span> Roots(List<Span> spans) => spans.Where(s => s.ParentSpanId is null || spans.All(p => p.SpanId != s.ParentSpanId));

    private async Task<List<Span>> TraceAsync(string jobId)
    {
        var json = await RunTraceAsync(jobId, json: true);
        return JsonSerializer.Deserialize<List<Span>>(json, Api.Json) ?? [];
    }

    private async Task<string> RunTraceAsync(string jobId, bool json)
    {
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(RepoRoot.Find(), "scripts", "trace.py"));
        start.ArgumentList.Add("--logs");
        start.ArgumentList.Add(network.Environment.LogDirectory);
        if (json)
            start.ArgumentList.Add("--json");
        start.ArgumentList.Add(jobId);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? await stdout : json ? "[]" : await stderr;
    }
}
