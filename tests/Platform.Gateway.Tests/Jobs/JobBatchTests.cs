using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Gateway.Jobs;
using Platform.Hosting.Http;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>
/// POST /v1/jobs:batch against the gateway in process with storage and Postgres real: a batch is written whole (its
/// jobs, their pending events and their JobSubmitted outbox rows) or not at all, and the same path serves one job.
/// </summary>
public sealed class JobBatchTests(SubmitTestGateway network, ITestOutputHelper output) : IClassFixture<SubmitTestGateway>
{
    private async Task<string> VectorAsync(int seed)
    {
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        return await network.PinVectorAsync([.. Enumerable.Range(0, 8).Select(_ => (float)random.NextDouble())]);
    }

    private static object Job(string a, string b, string kernel = "vector-add") =>
        new { kernel, inputs = new Dictionary<string, string> { ["a"] = a, ["b"] = b } };

    private static Task<HttpResponseMessage> SubmitBatchAsync(HttpClient http, IEnumerable<object?> jobs, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs:batch") { Content = JsonContent.Create(new { jobs }) };
        if (idempotencyKey is not null)
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        return http.SendAsync(request);
    }

    private async Task<NpgsqlConnection> GatewayDbAsync()
    {
        var connection = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
        await connection.OpenAsync();
        return connection;
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    [Fact]
    public async Task A_batch_is_accepted_whole_each_job_tracked_in_entry_order_with_its_own_JobSubmitted()
    {
        using var http = await network.ClientAsync();
        var a = await VectorAsync(2101);
        var b = await VectorAsync(2102);

        using var response = await SubmitBatchAsync(http, Enumerable.Range(0, 50).Select(i => Job(i % 2 == 0 ? a : b, a)));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var batch = await JsonAsync(response);
        var batchId = batch.GetProperty("id").GetString()!;
        Assert.Equal($"/v1/batches/{batchId}", response.Headers.Location?.OriginalString);
        Assert.Equal(50, batch.GetProperty("total").GetInt32());
        Assert.False(batch.GetProperty("finished").GetBoolean());
        Assert.Equal(50, batch.GetProperty("counts").GetProperty("pending").GetInt32());
        var jobIds = batch.GetProperty("jobIds").EnumerateArray().Select(j => j.GetString()!).ToList();
        Assert.Equal(50, jobIds.Distinct().Count());

        // Each entry is a job of its own, with the entry's inputs, in the entry's place.
        for (var i = 0; i < 50; i += 7)
        {
            var job = await http.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobIds[i]}");
            Assert.Equal("pending", job.GetProperty("status").GetString());
            Assert.Equal(i % 2 == 0 ? a : b, job.GetProperty("inputs").GetProperty("a").GetString());
        }
        await using var db = await GatewayDbAsync();
        var submitted = (await db.QueryAsync<string>(
            "select body->>'jobId' from outbox where message_type = 'Platform.Contracts.Messages.JobSubmitted' and body->>'jobId' = any(@jobIds)",
            new { jobIds = jobIds.ToArray() })).ToList();
        Assert.Equal(jobIds.Order(), submitted.Order());
        var pending = await db.ExecuteScalarAsync<long>("select count(*) from job_events where job_id = any(@jobIds) and version = 0", new { jobIds = jobIds.ToArray() });
        Assert.Equal(50, pending);
        Assert.Equal(jobIds, await db.QueryAsync<string>("select id from jobs where batch_id = @batchId order by batch_index", new { batchId }));

        var shown = await http.GetFromJsonAsync<JsonElement>($"/v1/batches/{batchId}");
        Assert.Equal(jobIds, shown.GetProperty("jobIds").EnumerateArray().Select(j => j.GetString()!));
        Assert.Equal(50, shown.GetProperty("counts").GetProperty("pending").GetInt32());
    }

    [Fact]
    public async Task A_single_job_is_answered_with_the_job_exactly_as_reading_it_back_shows_it()
    {
        using var http = await network.ClientAsync();
        var a = await VectorAsync(2111);

        // Both ways a single job is written: with the others waiting (no key), and in its own transaction (a key).
        using var grouped = await SubmitTestGateway.SubmitAsync(http, a, a);
        using var keyed = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = JsonContent.Create(Job(a, a)),
            Headers = { { "Idempotency-Key", "single-answer-2111" } },
        });

        foreach (var response in new[] { grouped, keyed })
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var answered = await JsonAsync(response);
            var id = answered.GetProperty("id").GetString()!;
            using var read = await http.GetAsync(new Uri($"/v1/jobs/{id}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            // No scheduler runs here, so the job stays pending: the answer, built without reading the job back, and
            // the read show the same job to the byte (its creation time to the microsecond Postgres keeps).
            var stored = await JsonAsync(read);
            output.WriteLine(answered.GetRawText());
            Assert.Equal("pending", answered.GetProperty("status").GetString());
            Assert.Equal(stored.GetRawText(), answered.GetRawText());
        }
    }

    [Fact]
    public async Task Single_jobs_posted_at_once_by_several_clients_share_commits_and_each_is_written_once_for_its_own_client()
    {
        var clients = new List<HttpClient>();
        for (var i = 0; i < 4; i++)
            clients.Add(await network.ClientAsync());
        var a = await VectorAsync(2121);
        var groupCommit = network.Gateway.Services.GetRequiredService<SubmissionGroupCommit>();
        var before = groupCommit.Written;

        var responses = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => SubmitTestGateway.SubmitAsync(clients[i % 4], a, a)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var ids = new List<string>();
        foreach (var response in responses)
            ids.Add((await JsonAsync(response)).GetProperty("id").GetString()!);
        Assert.Equal(40, ids.Distinct().Count());
        var after = groupCommit.Written;
        output.WriteLine($"40 single jobs written in {after.Groups - before.Groups} group commits");
        Assert.Equal(40, after.Jobs - before.Jobs);
        Assert.True(after.Groups - before.Groups < 40, "every single job was written by a commit of its own");

        // Each job is its submitter's alone, was written once with its pending event and its JobSubmitted, and the
        // jobs share transactions (a row's xmin is the transaction that wrote it).
        for (var i = 0; i < 40; i++)
        {
            using var own = await clients[i % 4].GetAsync(new Uri($"/v1/jobs/{ids[i]}", UriKind.Relative));
            using var other = await clients[(i + 1) % 4].GetAsync(new Uri($"/v1/jobs/{ids[i]}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        }
        await using var db = await GatewayDbAsync();
        var jobIds = ids.ToArray();
        var submitted = (await db.QueryAsync<string>(
            "select body->>'jobId' from outbox where message_type = 'Platform.Contracts.Messages.JobSubmitted' and body->>'jobId' = any(@jobIds)",
            new { jobIds })).ToList();
        Assert.Equal(ids.Order(), submitted.Order());
        Assert.Equal(40, await db.ExecuteScalarAsync<long>("select count(*) from job_events where job_id = any(@jobIds) and version = 0", new { jobIds }));
        var transactions = await db.ExecuteScalarAsync<long>("select count(distinct xmin::text) from jobs where id = any(@jobIds)", new { jobIds });
        Assert.Equal(after.Groups - before.Groups, transactions);
        foreach (var client in clients)
            client.Dispose();
    }

    [Fact]
    public async Task A_batch_with_one_invalid_entry_is_refused_whole_with_the_index_of_that_entry()
    {
        using var http = await network.ClientAsync();
        var a = await VectorAsync(2103);
        var jobs = Enumerable.Range(0, 10).Select(_ => Job(a, a)).ToList();
        jobs[7] = new { inputs = new Dictionary<string, string> { ["a"] = a, ["b"] = a } }; // no kernel

        using var invalid = await SubmitBatchAsync(http, jobs);

        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        var problem = await JsonAsync(invalid);
        Assert.Equal(Problems.Type("validation"), problem.GetProperty("type").GetString());
        Assert.Equal(7, problem.GetProperty("index").GetInt32());
        Assert.True(problem.GetProperty("errors").TryGetProperty("jobs[7].kernel", out _), problem.ToString());
        Assert.Single(problem.GetProperty("errors").EnumerateObject());

        // An input that is not pinned, found only by asking storage, refuses the batch the same way.
        var missing = Cid.Compute(Encoding.UTF8.GetBytes("never pinned 2104")).Value;
        jobs[7] = Job(a, a);
        jobs[3] = Job(a, missing);
        using var unpinned = await SubmitBatchAsync(http, jobs);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unpinned.StatusCode);
        var notFound = await JsonAsync(unpinned);
        Assert.Equal(Problems.Type("input-not-found"), notFound.GetProperty("type").GetString());
        Assert.Equal(3, notFound.GetProperty("index").GetInt32());
        Assert.StartsWith("entry 3: ", notFound.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Nothing of either batch exists.
        var list = await http.GetFromJsonAsync<JsonElement>("/v1/jobs");
        Assert.Empty(list.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task An_array_naming_hundreds_of_blobs_nobody_pinned_is_refused_after_a_few_reads_of_storage()
    {
        using var http = await network.ClientAsync();
        var jobs = Enumerable.Range(0, 500).Select(i => Cid.Compute(Encoding.UTF8.GetBytes($"never pinned {i}")).Value).Select(cid => Job(cid, cid));
        var before = network.StorageRequests.Count;

        using var response = await SubmitBatchAsync(http, jobs);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var problem = await JsonAsync(response);
        Assert.Equal(Problems.Type("input-not-found"), problem.GetProperty("type").GetString());
        Assert.InRange(problem.GetProperty("index").GetInt32(), 0, 499);
        var reads = network.StorageRequests.Count - before;
        output.WriteLine($"500 unpinned inputs: {reads} reads of storage");
        Assert.True(reads <= 32, $"the gateway read storage {reads} times for one refused array");
    }

    [Fact]
    public async Task An_empty_batch_and_one_over_ten_thousand_entries_are_refused()
    {
        using var http = await network.ClientAsync();
        using var empty = await SubmitBatchAsync(http, []);
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        Assert.Equal(Problems.Type("invalid-batch"), await SubmitTestGateway.ProblemTypeAsync(empty));

        using var tooMany = await SubmitBatchAsync(http, Enumerable.Range(0, JobSubmission.MaxBatchSize + 1).Select(_ => new { }));
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Equal(Problems.Type("invalid-batch"), await SubmitTestGateway.ProblemTypeAsync(tooMany));

        using var nullEntry = await SubmitBatchAsync(http, [null]);
        Assert.Equal(HttpStatusCode.BadRequest, nullEntry.StatusCode);
        Assert.Equal(0, (await JsonAsync(nullEntry)).GetProperty("index").GetInt32());
    }

    [Fact]
    public async Task A_batch_retried_with_its_idempotency_key_gives_back_the_first_batch_and_another_body_is_a_conflict()
    {
        using var http = await network.ClientAsync();
        var a = await VectorAsync(2105);
        var key = Guid.NewGuid().ToString();
        var jobs = Enumerable.Range(0, 5).Select(_ => Job(a, a)).ToList();

        using var first = await SubmitBatchAsync(http, jobs, key);
        using var again = await SubmitBatchAsync(http, jobs, key);

        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        var firstBatch = await JsonAsync(first);
        var replayed = await JsonAsync(again);
        Assert.Equal(firstBatch.GetProperty("id").GetString(), replayed.GetProperty("id").GetString());
        Assert.Equal(firstBatch.GetProperty("jobIds").ToString(), replayed.GetProperty("jobIds").ToString());
        var list = await http.GetFromJsonAsync<JsonElement>("/v1/jobs");
        Assert.Equal(5, list.GetProperty("items").GetArrayLength());

        using var other = await SubmitBatchAsync(http, jobs.Take(4), key);
        Assert.Equal(HttpStatusCode.Conflict, other.StatusCode);
        Assert.Equal(Problems.Type("idempotency-key-reused"), await SubmitTestGateway.ProblemTypeAsync(other));
        // A key of a batch is no key for a single job either.
        using var single = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = JsonContent.Create(Job(a, a)),
            Headers = { { "Idempotency-Key", key } },
        });
        Assert.Equal(HttpStatusCode.Conflict, single.StatusCode);
    }

    [Fact]
    public async Task A_batch_of_ten_thousand_jobs_is_written_in_one_request_with_a_job_and_a_message_each()
    {
        using var http = await network.ClientAsync();
        var a = await VectorAsync(2106);
        var b = await VectorAsync(2107);

        using var response = await SubmitBatchAsync(http, Enumerable.Range(0, JobSubmission.MaxBatchSize).Select(i => Job(a, i % 3 == 0 ? b : a)));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var batchId = (await JsonAsync(response)).GetProperty("id").GetString()!;
        await using var db = await GatewayDbAsync();
        Assert.Equal(JobSubmission.MaxBatchSize, await db.ExecuteScalarAsync<long>("select count(*) from jobs where batch_id = @batchId", new { batchId }));
        Assert.Equal(JobSubmission.MaxBatchSize, await db.ExecuteScalarAsync<long>(
            """
            select count(distinct o.body->>'jobId') from outbox o join jobs j on j.id = o.body->>'jobId'
            where o.message_type = 'Platform.Contracts.Messages.JobSubmitted' and j.batch_id = @batchId
            """, new { batchId }));
    }

    [Fact]
    public async Task Another_accounts_batch_is_not_found()
    {
        using var owner = await network.ClientAsync();
        using var stranger = await network.ClientAsync();
        var a = await VectorAsync(2108);
        using var response = await SubmitBatchAsync(owner, [Job(a, a)]);
        var batchId = (await JsonAsync(response)).GetProperty("id").GetString()!;

        foreach (var path in new[] { $"/v1/batches/{batchId}", $"/v1/batches/{batchId}/events" })
        {
            using var seen = await stranger.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, seen.StatusCode);
            Assert.Equal(Problems.Type("batch-not-found"), await SubmitTestGateway.ProblemTypeAsync(seen));
        }
        using var cancel = await stranger.PostAsync($"/v1/batches/{batchId}/cancel", null);
        Assert.Equal(HttpStatusCode.NotFound, cancel.StatusCode);
    }
}
