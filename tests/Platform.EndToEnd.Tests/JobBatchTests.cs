using System.Net;
using System.Net.Http.Json;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>Job arrays across real processes: each job of a batch runs and is paid on its own; one stream follows them all.</summary>
public sealed class JobBatchTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    private sealed record Batch(string Id, int Total, bool Finished, Dictionary<string, int> Counts, List<string> JobIds);

    private async Task<(HttpClient Http, List<object> Jobs)> ClientAndJobsAsync(int count, int seed, string? region = null)
    {
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var client = await network.CreateAccountAsync("client", 100m);
        var http = network.Client(client.Key);
        var jobs = new List<object>();
        for (var i = 0; i < count; i++)
        {
            var a = await http.PinAsync(NpyArray.FromFloat32(Api.RandomFloats(rng, 4), 4));
            var b = await http.PinAsync(NpyArray.FromFloat32(Api.RandomFloats(rng, 4), 4));
            jobs.Add(new { kernel = "vector-add", inputs = new { a = a.Cid, b = b.Cid }, requirements = region is null ? null : new { region } });
        }
        return (http, jobs);
    }

    private static async Task<Batch> SubmitAsync(HttpClient http, List<object> jobs)
    {
        using var response = await http.PostAsJsonAsync("/v1/jobs:batch", new { jobs }, Api.Json);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Batch>(Api.Json))!;
    }

    [Fact]
    public async Task Every_job_of_an_array_runs_and_is_paid_once_and_one_stream_follows_them_all_to_done()
    {
        var (http, jobs) = await ClientAndJobsAsync(12, 2201);
        var batch = await SubmitAsync(http, jobs);

        var events = await EventStream.ReadAsync(http, $"/v1/batches/{batch.Id}/events");

        // Every job's changes, in its own order, each once; then done with the whole batch completed.
        var changes = events.Where(e => e.Type == "status").ToList();
        foreach (var jobId in batch.JobIds)
        {
            var ofJob = changes.Where(e => e.Data.GetProperty("jobId").GetString() == jobId).ToList();
            Assert.Equal(["pending", "queued", "assigned", "running", "completed"], ofJob.Select(e => e.Data.GetProperty("status").GetString()));
            Assert.Equal([0, 1, 2, 3, 4], ofJob.Select(e => e.Data.GetProperty("version").GetInt32()));
        }
        Assert.Equal(batch.JobIds.Count * 5, changes.Count);
        var done = Assert.Single(events, e => e.Type == "done");
        Assert.Same(done, events[^1]);
        Assert.True(done.Data.GetProperty("finished").GetBoolean());
        Assert.Equal(12, done.Data.GetProperty("counts").GetProperty("completed").GetInt32());

        // Each job was verified and paid on its own: a cost, one charge, nothing left in escrow.
        foreach (var jobId in batch.JobIds)
        {
            var job = await http.GetJobAsync(jobId);
            Assert.Equal("completed", job.Status);
            Assert.True(job.Cost > 0, $"job {jobId} has no cost");
            var entries = await http.EntriesForJobAsync(jobId);
            Assert.NotEmpty(entries);
        }
        var account = await http.AccountAsync();
        Assert.Equal(0m, account.Escrowed);

        // A client that lost the stream after the tenth change resumes from there: every later change comes again
        // (earlier ones may too, known by job and version), and so does done.
        var resumed = await EventStream.ReadAsync(http, $"/v1/batches/{batch.Id}/events", lastEventId: changes[9].Id);
        var resumedKeys = resumed.Where(e => e.Type == "status").Select(Key).ToHashSet();
        Assert.All(changes.Skip(10), e => Assert.Contains(Key(e), resumedKeys));
        Assert.Equal("done", resumed[^1].Type);
    }

    private static (string?, int) Key(StreamedEvent e) => (e.Data.GetProperty("jobId").GetString(), e.Data.GetProperty("version").GetInt32());

    [Fact]
    public async Task Cancelling_an_array_cancels_every_job_not_yet_finished_and_refunds_its_escrow()
    {
        // No worker serves this region: the jobs wait in the queue until cancelled.
        var (http, jobs) = await ClientAndJobsAsync(5, 2202, region: "nowhere");
        var before = await http.AccountAsync();
        var batch = await SubmitAsync(http, jobs);
        await Eventually.UntilAsync(async () => (await http.GetFromJsonAsync<Batch>($"/v1/batches/{batch.Id}", Api.Json))!.Counts.GetValueOrDefault("queued") == 5,
            TimeSpan.FromSeconds(60), "every job of the batch queued");

        using var cancel = await http.PostAsync($"/v1/batches/{batch.Id}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);

        var events = await EventStream.ReadAsync(http, $"/v1/batches/{batch.Id}/events");
        var done = events[^1];
        Assert.Equal("done", done.Type);
        Assert.Equal(5, done.Data.GetProperty("counts").GetProperty("cancelled").GetInt32());
        await Eventually.UntilAsync(async () => (await http.AccountAsync()).Escrowed == 0m, TimeSpan.FromSeconds(30), "the escrow of every cancelled job refunded");
        Assert.Equal(before.Balance, (await http.AccountAsync()).Balance);
    }
}
