using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>The live event stream of a job and idempotent submission, across real processes.</summary>
public sealed class JobEventsTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    private static Task<List<StreamedEvent>> ReadStreamAsync(HttpClient http, string jobId, string? lastEventId = null) =>
        EventStream.ReadAsync(http, $"/v1/jobs/{jobId}/events", lastEventId);

    private async Task<(HttpClient Http, object Body)> ClientAndJobAsync()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        var http = network.Client(client.Key);
        var vector = await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        return (http, new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid } });
    }

    [Fact]
    public async Task The_event_stream_delivers_every_status_change_of_a_job_in_order_then_ends()
    {
        var (http, body) = await ClientAndJobAsync();
        using var submitted = await http.SubmitAsync(body);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;

        var events = await ReadStreamAsync(http, job.Id);

        var changes = events.Where(e => e.Type == "status").ToList();
        Assert.Equal(["pending", "queued", "assigned", "running", "completed"], changes.Select(e => e.Data.GetProperty("status").GetString()));
        Assert.Equal(Enumerable.Range(0, changes.Count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), changes.Select(e => e.Id));
        Assert.All(changes, e => Assert.Equal(job.Id, e.Data.GetProperty("jobId").GetString()));
        var times = changes.Select(e => e.Data.GetProperty("occurredAt").GetDateTimeOffset()).ToList();
        Assert.Equal(times.Order(), times);

        // A client that lost the connection after the second change resumes from there and misses nothing.
        var resumed = (await ReadStreamAsync(http, job.Id, lastEventId: "1")).Where(e => e.Type == "status");
        Assert.Equal(["assigned", "running", "completed"], resumed.Select(e => e.Data.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task A_stream_resumed_past_a_finished_jobs_end_ends_at_once_and_an_id_no_event_can_have_is_refused()
    {
        var (http, body) = await ClientAndJobAsync();
        using var submitted = await http.SubmitAsync(body);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "completed", "the job completed");
        var end = (await ReadStreamAsync(http, job.Id)).Last(e => e.Type == "status").Id;

        // Resumed at or past the completion (up to the highest id a job's event can have), the stream ends with nothing
        // to send, well within the reader's deadline (it used to wait for versions that never come).
        foreach (var resumeFrom in new[] { end!, "999999", "1000000" })
        {
            var events = await EventStream.ReadAsync(http, $"/v1/jobs/{job.Id}/events", resumeFrom, TimeSpan.FromSeconds(20));
            Assert.DoesNotContain(events, e => e.Type == "status");
        }

        foreach (var impossible in new[] { "2147483647", "1000001", "-1", "abc" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{job.Id}/events");
            request.Headers.Add("Last-Event-ID", impossible);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("urn:platform:problem:invalid-last-event-id", problem.RootElement.GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task An_account_past_its_open_streams_is_refused_with_429_until_one_closes()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        var vector = await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        // A job no worker can take: its streams stay open.
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region = "nowhere" } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        const int perKey = 16; // Limits:MaxStreamsPerKey's default
        var open = new List<HttpResponseMessage>();
        try
        {
            for (var i = 0; i < perKey; i++)
            {
                var response = await http.GetAsync($"/v1/jobs/{job.Id}/events", HttpCompletionOption.ResponseHeadersRead);
                open.Add(response);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            using (var refused = await http.GetAsync($"/v1/jobs/{job.Id}/events", HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
                Assert.NotNull(refused.Headers.RetryAfter);
                using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
                Assert.Equal("urn:platform:problem:too-many-streams", problem.RootElement.GetProperty("type").GetString());
            }
            // Another account is not affected.
            using (var other = network.Client((await network.CreateAccountAsync("client", 1m)).Key))
            {
                using var theirs = await other.GetAsync($"/v1/jobs/{job.Id}/events", HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.NotFound, theirs.StatusCode); // counted only once it is theirs to stream
            }

            // One closes: the gateway sees the client go and frees its slot.
            open[0].Dispose();
            open.RemoveAt(0);
            var again = await Eventually.UntilAsync(async () =>
            {
                var response = await http.GetAsync($"/v1/jobs/{job.Id}/events", HttpCompletionOption.ResponseHeadersRead);
                if (response.StatusCode == HttpStatusCode.OK)
                    open.Add(response);
                else
                    response.Dispose();
                return response.StatusCode;
            }, status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(30), "a stream once one was closed");
            Assert.Equal(HttpStatusCode.OK, again);
        }
        finally
        {
            foreach (var response in open)
                response.Dispose();
        }
    }

    [Fact]
    public async Task Five_hundred_idle_job_and_batch_streams_barely_read_the_database_and_the_gateway_keeps_answering()
    {
        // 32 accounts, each at its cap of 16 streams: 8 on a job and 8 on a one-job batch, none of which can run.
        const int accounts = 32, perKind = 8;
        await using var gatewayDb = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
        await gatewayDb.OpenAsync();
        await gatewayDb.ExecuteAsync("create extension if not exists pg_stat_statements");
        // Every statement that reads or writes the event log, as the database counts them (nothing else writes it now).
        Task<long> LogStatementsAsync() => gatewayDb.ExecuteScalarAsync<long>(
            "select coalesce(sum(s.calls), 0)::bigint from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = current_database() and s.query like '%job_events%'");

        var open = new List<HttpResponseMessage>();
        var clients = new List<HttpClient>();
        try
        {
            string? vector = null;
            for (var a = 0; a < accounts; a++)
            {
                var http = network.Client((await network.CreateAccountAsync("client", 100m)).Key);
                clients.Add(http);
                vector ??= (await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3))).Cid;
                var body = new { kernel = "vector-add", inputs = new { a = vector, b = vector }, requirements = new { region = "nowhere" } };
                using var submitted = await http.SubmitAsync(body);
                var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
                using var batchSubmitted = await http.PostAsJsonAsync("/v1/jobs:batch", new { jobs = new[] { body } }, Api.Json);
                Assert.Equal(HttpStatusCode.Accepted, batchSubmitted.StatusCode);
                var batchId = (await batchSubmitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
                foreach (var path in Enumerable.Repeat($"/v1/jobs/{job.Id}/events", perKind).Concat(Enumerable.Repeat($"/v1/batches/{batchId}/events", perKind)))
                {
                    var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
                    open.Add(response);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                }
            }

            var before = await LogStatementsAsync();
            var window = Stopwatch.StartNew();
            using var anonymous = network.Client(null);
            var slowest = TimeSpan.Zero;
            var answered = 0;
            // Ten seconds of idle streams, the gateway asked for its readiness and an account back to back all along
            // (neither reads the event log).
            while (window.Elapsed < TimeSpan.FromSeconds(10))
            {
                var asked = Stopwatch.StartNew();
                using (var ready = await anonymous.GetAsync(new Uri("/health/ready", UriKind.Relative)))
                    Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
                using (var account = await clients[answered % accounts].GetAsync(new Uri("/v1/account", UriKind.Relative)))
                    Assert.Equal(HttpStatusCode.OK, account.StatusCode);
                slowest = asked.Elapsed > slowest ? asked.Elapsed : slowest;
                answered++;
            }
            var statements = await LogStatementsAsync() - before;
            var seconds = window.Elapsed.TotalSeconds;
            output.WriteLine($"{open.Count} idle streams: {statements} event-log statements in {seconds:F1} s ({statements / seconds / open.Count:F3} per stream per second); "
                + $"{answered} readiness + account pairs answered, slowest {slowest.TotalMilliseconds:F0} ms");
            Assert.Equal(accounts * 2 * perKind, open.Count);
            // Woken by notifications, an idle stream reads the log once per 5 s fallback (0.2/s); polling every 250 ms
            // (as batch streams did) would be 4/s. Half a read per stream per second separates the two with room.
            Assert.True(statements / seconds / open.Count < 0.5, $"{statements} event-log statements in {seconds:F1} s from {open.Count} idle streams");
        }
        finally
        {
            foreach (var response in open)
                response.Dispose();
            foreach (var http in clients)
                http.Dispose();
        }
    }

    [Fact]
    public async Task The_event_stream_of_another_clients_job_is_not_found()
    {
        var (http, body) = await ClientAndJobAsync();
        using var submitted = await http.SubmitAsync(body);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        using var stranger = network.Client((await network.CreateAccountAsync("client", 1m)).Key);

        using var response = await stranger.GetAsync($"/v1/jobs/{job.Id}/events");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Twenty_concurrent_identical_submissions_with_one_idempotency_key_create_one_job()
    {
        var (http, body) = await ClientAndJobAsync();
        var key = Guid.NewGuid().ToString();

        async Task<(HttpStatusCode Status, Job? Job, bool Replayed)> SubmitAsync(object payload)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = JsonContent.Create(payload, options: Api.Json) };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await http.SendAsync(request);
            var job = response.StatusCode == HttpStatusCode.Accepted ? await response.Content.ReadFromJsonAsync<Job>(Api.Json) : null;
            return (response.StatusCode, job, response.Headers.Contains("Idempotent-Replayed"));
        }

        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => SubmitAsync(body)));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Accepted, a.Status));
        var id = Assert.Single(answers.Select(a => a.Job!.Id).Distinct());
        Assert.Equal(19, answers.Count(a => a.Replayed));
        var list = await http.GetFromJsonAsync<JsonElement>("/v1/jobs", Api.Json);
        Assert.Equal(id, Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());

        // The same key with another request is refused, and creates nothing.
        var different = await SubmitAsync(new { kernel = "vector-add", inputs = body.GetType().GetProperty("inputs")!.GetValue(body), replicas = 1, priority = 3 });
        Assert.Equal(HttpStatusCode.Conflict, different.Status);
        var again = await http.GetFromJsonAsync<JsonElement>("/v1/jobs", Api.Json);
        Assert.Single(again.GetProperty("items").EnumerateArray());
    }
}
