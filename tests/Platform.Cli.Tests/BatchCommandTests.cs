using System.Text.Json;

namespace Platform.Cli.Tests;

/// <summary>
/// 'jobs submit-batch', 'jobs batch' and 'jobs cancel-batch' against a fake gateway on a real port that answers
/// what each test sets and records what it was sent.
/// </summary>
public sealed class BatchCommandTests : IDisposable
{
    private const string InputCid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("platform-cli-batch-");
    private readonly CannedGateway _gateway;
    private volatile string _batch = Batch(finished: false, """{"pending":2}""");
    private volatile string _events = "";
    private CannedAnswer? _refusal;

    public BatchCommandTests() => _gateway = new CannedGateway(Answer);

    public void Dispose()
    {
        _gateway.Dispose();
        _home.Delete(recursive: true);
    }

    private sealed record Run(int Code, string Out, string Err);

    private async Task<Run> RunAsync(string? stdin, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = _gateway.Url, ["PLATFORM_KEY"] = "pk_test", ["HOME"] = _home.FullName };
        var host = CliHost.Plain(stdout, stderr, env) with { Input = new StringReader(stdin ?? "") };
        var code = await Cli.RunAsync(args, host);
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    private string File(string json)
    {
        var path = Path.Combine(_home.FullName, "batch.json");
        System.IO.File.WriteAllText(path, json);
        return path;
    }

    private static string Jobs(string secondInput = InputCid) => $$"""
        {"jobs": [
          {"kernel": "vector-add", "inputs": {"a": "{{InputCid}}", "b": "{{InputCid}}"} },
          {"kernel": "knn", "inputs": {"a": "{{secondInput}}"}, "params": {"k": 3}, "maxPrice": 2 }
        ]}
        """;

    [Fact]
    public async Task Submit_batch_prints_the_batch_id_and_sends_every_entry_with_the_key()
    {
        var run = await RunAsync(null, "jobs", "submit-batch", File(Jobs()), "--idempotency-key", "k1");

        Assert.Equal(0, run.Code);
        Assert.Equal("bat_cli", run.Out.Trim());
        Assert.Contains("submitted 2 jobs; see them with 'platform jobs batch bat_cli'", run.Err, StringComparison.Ordinal);
        var sent = Assert.Single(_gateway.Received("POST /v1/jobs:batch"));
        using var body = JsonDocument.Parse(sent);
        var jobs = body.RootElement.GetProperty("jobs").EnumerateArray().ToList();
        Assert.Equal(["vector-add", "knn"], jobs.Select(j => j.GetProperty("kernel").GetString()));
        Assert.Equal(3, jobs[1].GetProperty("params").GetProperty("k").GetInt32());
        Assert.Equal(2m, jobs[1].GetProperty("maxPrice").GetDecimal());
        Assert.Equal(["k1"], _gateway.ReceivedHeader("POST /v1/jobs:batch", "Idempotency-Key"));
    }

    [Fact]
    public async Task Submit_batch_reads_a_bare_array_from_stdin_and_prints_the_batch_as_json()
    {
        var array = JsonDocument.Parse(Jobs()).RootElement.GetProperty("jobs").GetRawText();

        var run = await RunAsync(array, "jobs", "submit-batch", "-", "--json");

        Assert.Equal(0, run.Code);
        using var printed = JsonDocument.Parse(run.Out);
        Assert.Equal("bat_cli", printed.RootElement.GetProperty("id").GetString());
        Assert.Equal(["job_a", "job_b"], printed.RootElement.GetProperty("jobIds").EnumerateArray().Select(j => j.GetString()));
        Assert.False(printed.RootElement.TryGetProperty("done", out _));
        Assert.Equal(2, JsonDocument.Parse(_gateway.Received("POST /v1/jobs:batch").Single()).RootElement.GetProperty("jobs").GetArrayLength());
    }

    [Fact]
    public async Task A_refused_batch_prints_the_problem_and_the_entry_that_was_bad()
    {
        _refusal = CannedAnswer.Problem(422,
            """{"type":"urn:platform:problem:input-not-found","title":"Input not found","status":422,"detail":"blob bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku is not pinned","index":1}""");

        var run = await RunAsync(null, "jobs", "submit-batch", File(Jobs()));

        Assert.Equal(Cli.Failed, run.Code);
        Assert.Empty(run.Out);
        Assert.Equal($"error: Input not found: blob {InputCid} is not pinned (at jobs[1])", run.Err.Trim());
    }

    [Fact]
    public async Task A_file_path_as_an_input_is_a_usage_error_naming_the_entry_and_nothing_is_sent()
    {
        var run = await RunAsync(null, "jobs", "submit-batch", File(Jobs(secondInput: "a.npy")));

        Assert.Equal(Cli.Usage, run.Code);
        Assert.Contains("jobs[1].inputs.a: 'a.npy' is not a CID (a batch pins no files", run.Err, StringComparison.Ordinal);
        Assert.Empty(_gateway.Received("POST /v1/jobs:batch"));
    }

    [Fact]
    public async Task Submit_batch_wait_follows_the_stream_and_exits_1_when_a_job_failed()
    {
        _batch = Batch(finished: true, """{"completed":1,"failed":1}""");
        _events = Events(("job_a", "completed"), ("job_b", "failed"));

        var run = await RunAsync(null, "jobs", "submit-batch", File(Jobs()), "--wait");

        Assert.Equal(Cli.Failed, run.Code);
        Assert.Contains("2/2 done, 1 failed", run.Err, StringComparison.Ordinal);
        Assert.Contains("error: batch bat_cli: 1 of 2 jobs did not complete (1 failed)", run.Err, StringComparison.Ordinal);
        Assert.Matches(@"finished\s+yes", run.Out);
        Assert.Single(_gateway.Received("GET /v1/batches/bat_cli/events"));
    }

    [Fact]
    public async Task Submit_batch_wait_exits_0_when_every_job_completed()
    {
        _batch = Batch(finished: true, """{"completed":2}""");
        _events = Events(("job_a", "completed"), ("job_b", "completed"));

        var run = await RunAsync(null, "jobs", "submit-batch", File(Jobs()), "--wait");

        Assert.Equal(0, run.Code);
        Assert.Contains("2/2 done", run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("error", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Batch_shows_the_counts_and_cancel_batch_posts_the_cancel()
    {
        _batch = Batch(finished: false, """{"running":1,"cancelled":1}""");

        var shown = await RunAsync(null, "jobs", "batch", "bat_cli");
        var cancelled = await RunAsync(null, "jobs", "cancel-batch", "bat_cli");

        Assert.Equal(0, shown.Code);
        Assert.Matches(@"jobs\s+2\s", shown.Out);
        Assert.Matches(@"finished\s+no\s", shown.Out);
        Assert.Matches(@"progress\s+1/2 done, 1 cancelled", shown.Out);
        Assert.Matches(@"running\s+1\s", shown.Out);
        Assert.Equal(0, cancelled.Code);
        Assert.Equal("bat_cli: cancel requested for the jobs not finished (1/2 had finished)", cancelled.Out.Trim());
        Assert.Single(_gateway.Received("POST /v1/batches/bat_cli/cancel"));
    }

    private static string Batch(bool finished, string counts) => $$"""
        {"id":"bat_cli","createdAt":"2026-12-04T10:00:00Z","total":2,"finished":{{(finished ? "true" : "false")}},"counts":{{counts}},"jobIds":["job_a","job_b"]}
        """;

    /// <summary>
    /// Both jobs pending, then each one's final status, then done with <see cref="_batch"/>: a whole batch stream,
    /// as the gateway closes it.
    /// </summary>
    private string Events(params (string Job, string Status)[] final)
    {
        var frames = new System.Text.StringBuilder();
        var id = 0;
        foreach (var (job, status) in final.Select(f => (f.Job, "pending")).Concat(final))
        {
            var version = status == "pending" ? 0 : 1;
            frames.Append($"id: {++id}\nevent: status\ndata: {{\"jobId\":\"{job}\",\"version\":{version},\"status\":\"{status}\",\"occurredAt\":\"2026-12-04T10:00:00+00:00\"}}\n\n");
        }
        frames.Append($"id: {++id}\nevent: done\ndata: {_batch.Trim()}\n\n");
        return frames.ToString();
    }

    private CannedAnswer Answer(string route, string body) => route switch
    {
        "POST /v1/jobs:batch" => _refusal ?? new CannedAnswer(202, "application/json", Batch(finished: false, """{"pending":2}""")),
        "GET /v1/batches/bat_cli" or "POST /v1/batches/bat_cli/cancel" => CannedAnswer.Json(_batch),
        "GET /v1/batches/bat_cli/events" => new CannedAnswer(200, "text/event-stream", _events),
        _ => CannedAnswer.NotFound,
    };
}
