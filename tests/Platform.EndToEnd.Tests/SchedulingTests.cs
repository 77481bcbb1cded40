using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>Workers that hang or die, jobs that wait for the right worker, and cancelling, across real processes.</summary>
public sealed class SchedulingTests(BareNetwork network) : IClassFixture<BareNetwork>
{
    private async Task<(Account Client, HttpClient Http, Pinned Vector)> ClientAsync(decimal credits = 100m)
    {
        var client = await network.CreateAccountAsync("client", credits);
        var http = network.Client(client.Key);
        // Pinned by the operator, who pins for free, so the client's balance moves only with its jobs.
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        return (client, http, vector);
    }

    private static async Task<Job> SubmitAsync(HttpClient http, Pinned vector, string region)
    {
        using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Job>(Api.Json))!;
    }

    [Fact]
    public async Task Job_of_a_worker_that_dies_completes_on_another_exactly_once_and_the_dead_workers_operator_is_not_paid()
    {
        var (_, http, vector) = await ClientAsync();
        var doomedOperator = await network.CreateOperatorAsync();
        var healthyOperator = await network.CreateOperatorAsync();
        // The doomed worker would take ten minutes over the kernel, so it dies mid-job. (It is killed once it runs the
        // job, not frozen beforehand: a worker frozen before the job reaches it falls silent, and on a slow machine
        // the scheduler could write it off before it ever got the job.)
        var doomed = await network.StartWorkerAsync(doomedOperator.Key, region: "failover", settings: new() { ["Worker__Faults__KernelDelay"] = "00:10:00" });

        var job = await SubmitAsync(http, vector, "failover");
        await http.WaitForAsync(job.Id, j => j.Status == "running", "job running on the doomed worker");
        doomed.Kill();
        await network.StartWorkerAsync(healthyOperator.Key, region: "failover");

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed" && j.Cost is not null || j.Status == "failed", "job completed elsewhere");
        Assert.Equal("completed", done.Status);
        // The dead worker's attempt failed; exactly one attempt, on another worker, was accepted.
        Assert.Equal("failed", done.Attempts[0].Status);
        var accepted = Assert.Single(done.Attempts, a => a.Status == "accepted");
        Assert.NotEqual(done.Attempts[0].WorkerId, accepted.WorkerId);
        Assert.Equal(100m - done.Cost!.Value, (await http.AccountAsync()).Balance);

        using var healthy = network.Client(healthyOperator.Key);
        using var dead = network.Client(doomedOperator.Key);
        await Eventually.UntilAsync(() => healthy.AccountAsync(), a => a.Earned > 0, TimeSpan.FromSeconds(30), "the healthy operator paid");
        var deadAccount = await dead.AccountAsync();
        Assert.Equal(0m, deadAccount.Balance);
        Assert.Equal(0m, deadAccount.Earned);
    }

    [Fact]
    public async Task Job_waits_while_no_worker_fits_and_runs_when_one_starts()
    {
        var (_, http, vector) = await ClientAsync();
        var job = await SubmitAsync(http, vector, "late-region");
        await http.WaitForAsync(job.Id, j => j.Status == "queued", "job queued");

        var operatorAccount = await network.CreateOperatorAsync();
        var worker = await network.StartWorkerAsync(operatorAccount.Key, region: "late-region");

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "job finished");
        Assert.Equal("completed", done.Status);
        using var workers = network.Client(null);
        var listed = await workers.GetFromJsonAsync<JsonElement>("/v1/workers");
        var ours = listed.EnumerateArray().Single(w => w.GetProperty("workerId").GetString() == done.Attempts[0].WorkerId);
        Assert.Equal("late-region", ours.GetProperty("region").GetString());
        Assert.False(worker.HasExited);
    }

    [Fact]
    public async Task Cancelled_job_is_refunded_and_a_second_cancel_says_the_same()
    {
        var (_, http, vector) = await ClientAsync(10m);
        var job = await SubmitAsync(http, vector, "nowhere");
        await http.WaitForAsync(job.Id, j => j.Status == "queued", "job queued");
        Assert.True((await http.AccountAsync()).Escrowed > 0);

        // The answer is the scheduler's decision, already committed: cancelled, not "asked".
        using var cancel = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal("cancelled", (await cancel.Content.ReadFromJsonAsync<Job>(Api.Json))!.Status);

        var done = await http.WaitForAsync(job.Id, j => j.Status == "cancelled", "job cancelled");
        Assert.Equal("cancelled_by_client", done.Error?.Reason);
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 10m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "escrow refunded");
        using var again = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(10m, (await http.AccountAsync()).Balance);
    }

    [Fact]
    public async Task A_job_verifying_with_one_result_in_is_cancelled_for_good_refunded_in_full_and_the_late_result_is_not_paid()
    {
        var (_, http, vector) = await ClientAsync();
        var fast = await network.CreateOperatorAsync();
        var slow = await network.CreateOperatorAsync();
        // Two replicas from different operators: the fast worker's result comes in, and the job waits (verifying) for
        // the slow one's.
        await network.StartWorkerAsync(fast.Key, region: "cancel-verifying");
        await network.StartWorkerAsync(slow.Key, region: "cancel-verifying", settings: new() { ["Worker__Faults__KernelDelay"] = "00:00:06" });
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, replicas = 2, requirements = new { region = "cancel-verifying" } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "verifying" && j.Attempts.Count == 2, "one result in, the other replica running");

        using var cancel = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal("cancelled", (await cancel.Content.ReadFromJsonAsync<Job>(Api.Json))!.Status);

        // The running replica is told to stop, and neither the result already in nor a late one is paid.
        var done = await http.WaitForAsync(job.Id, j => j.Status == "cancelled" && j.Attempts.All(a => a.Status is not ("assigned" or "running")), "job cancelled, attempts ended");
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 100m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "refunded in full");
        // The worker still running a replica is told to stop it.
        await Eventually.UntilAsync(() => Task.FromResult(network.Services.Where(s => s.Service == "worker").Select(w => w.Log()).ToList()),
            logs => logs.Any(log => log.Contains($"Cancelling attempt", StringComparison.Ordinal) && log.Contains($"of {job.Id}", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "the running replica's worker told to stop");
        Assert.Equal("cancelled", (await http.GetJobAsync(job.Id)).Status);
        Assert.Equal(100m, (await http.AccountAsync()).Balance);
        using var fastHttp = network.Client(fast.Key);
        using var slowHttp = network.Client(slow.Key);
        Assert.Equal(0m, (await fastHttp.AccountAsync()).Earned);
        Assert.Equal(0m, (await slowHttp.AccountAsync()).Earned);
        Assert.Equal(2, done.Attempts.Count);
    }

    [Fact]
    public async Task A_cancel_of_a_job_the_scheduler_completed_is_refused_even_while_the_gateways_view_still_shows_it_running()
    {
        var (_, http, vector) = await ClientAsync();
        var operatorAccount = await network.CreateOperatorAsync();
        await network.StartWorkerAsync(operatorAccount.Key, region: "cancel-race");
        var job = await SubmitAsync(http, vector, "cancel-race");
        var done = await http.WaitForAsync(job.Id, j => j.Status == "completed" && j.Cost is not null, "job completed and settled");

        // The gateway's view of the job one step behind the scheduler, as it is for a moment after every completion.
        await using (var gateway = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway")))
            await gateway.ExecuteAsync("update jobs set status = 'running', status_rank = 3 where id = @id", new { id = job.Id });
        Assert.Equal("running", (await http.GetJobAsync(job.Id)).Status);

        // The scheduler decides: the job completed, so no cancel. (Answered 202 from the view before, and the job stayed paid.)
        using var cancel = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Conflict, cancel.StatusCode);
        var problem = await cancel.Content.ReadFromJsonAsync<JsonElement>();
        Assert.EndsWith("job-finished", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Contains("completed", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(100m - done.Cost!.Value, (await http.AccountAsync()).Balance);
    }

    [Fact]
    public async Task A_worker_that_cannot_reach_storage_fails_its_attempts_with_that_reason_at_once_and_runs_jobs_again_once_storage_is_back()
    {
        var (_, http, vector) = await ClientAsync();
        var nodeOperator = await network.CreateOperatorAsync();
        // No worker serves the region yet, so the job waits while storage goes down.
        var job = await SubmitAsync(http, vector, "storage-outage");
        await http.WaitForAsync(job.Id, j => j.Status == "queued", "job queued");
        var storage = network.Services.Single(s => s.Service == "storage");
        storage.Kill();
        Job failed;
        ServiceProcess worker;
        try
        {
            // A one-second retry window: each attempt's fetch gives up quickly, so the job has its three attempts
            // well within the ten-second lease that would otherwise end them.
            worker = await network.StartWorkerAsync(nodeOperator.Key, region: "storage-outage", settings: new() { ["Worker__BlobRetryWindow"] = "00:00:01" });
            failed = await http.WaitForAsync(job.Id, j => j.Status == "failed", "job failed while storage is down");
        }
        finally
        {
            await network.RestartAsync(storage);
        }

        Assert.Equal("attempts_exhausted", failed.Error!.Reason);
        Assert.Equal(3, failed.Attempts.Count);
        Assert.All(failed.Attempts, a =>
        {
            Assert.Equal("failed", a.Status);
            Assert.Equal("storage_unreachable", a.StatusReason!.Code);
            Assert.Contains("kept failing for 1 s", a.StatusReason.Message, StringComparison.Ordinal);
        });
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 100m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "the failed job refunded");
        // The network error was handled, not thrown: no consumer of the worker faulted or logged an error.
        var errors = worker.Log().Split('\n').Where(line => line.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal)
            && (line.Contains("\"Category\":\"MassTransit", StringComparison.Ordinal) || line.Contains("\"Category\":\"Platform.Worker.Attempts", StringComparison.Ordinal)));
        Assert.Empty(errors);
        Assert.Contains("storage unreachable through the gateway", worker.Log(), StringComparison.Ordinal);

        var again = await SubmitAsync(http, vector, "storage-outage");
        var done = await http.WaitForAsync(again.Id, j => j.Status is "completed" or "failed", "job run after storage came back");
        Assert.Equal("completed", done.Status);
        Assert.Single(done.Attempts);
    }
}

/// <summary>
/// The public network view, on a network of its own where only this test acts, so every count it shows is known:
/// one worker, one job completed, one waiting, the blobs pinned and the credits minted for the completed job.
/// </summary>
public sealed class NetworkViewTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    /// <summary>The view's counts, read by their names on the wire.</summary>
    private sealed record Counts(int WorkersOnline, int WorkersOffline, string Regions, string Devices, int Slots, int ActiveAttempts, double Load,
        int JobsQueued, int JobsPerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned, string Verification, int EnergyJobs, string Rejected);

    private static Counts Read(JsonElement v) => new(
        v.GetProperty("workersOnline").GetInt32(), v.GetProperty("workersOffline").GetInt32(),
        Sorted(v.GetProperty("regions")), Sorted(v.GetProperty("devices")),
        v.GetProperty("slots").GetInt32(), v.GetProperty("activeAttempts").GetInt32(), v.GetProperty("load").GetDouble(),
        v.GetProperty("jobsQueued").GetInt32(), v.GetProperty("jobsPerMinute").GetInt32(), v.GetProperty("creditsMinted").GetDecimal(),
        v.GetProperty("bytesPinned").GetInt64(), v.GetProperty("blobsPinned").GetInt64(),
        string.Join(',', new[] { "jobs", "extraAttempts", "overhead", "spotChecked", "mismatches" }.Select(p => $"{p}={v.GetProperty("verification").GetProperty(p).GetDouble()}")),
        v.GetProperty("energy").GetProperty("jobs").GetInt32(),
        Sorted(v.GetProperty("rejectedNodeMessages")));

    private static string Sorted(JsonElement map) =>
        string.Join(',', map.EnumerateObject().Select(p => $"{p.Name}={p.Value.GetRawText()}").Order(StringComparer.Ordinal));

    private static async Task<JsonElement> GetPublicAsync(HttpClient anonymous, string path)
    {
        using var response = await anonymous.GetAsync(new Uri(path, UriKind.Relative));
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} without a key: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<Job> SubmitAsync(HttpClient http, Pinned vector, string region)
    {
        using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Job>(Api.Json))!;
    }

    [Fact]
    public async Task Network_view_is_public_and_counts_what_happened()
    {
        using var anonymous = network.Client(null);
        // Nothing has happened yet: the network's operator exists, but no worker, job or pin.
        Assert.Equal(new Counts(0, 0, "", "", 0, 0, 0, 0, 0, 0m, 0, 0, "jobs=0,extraAttempts=0,overhead=0,spotChecked=0,mismatches=0", 0, ""),
            Read(await GetPublicAsync(anonymous, "/v1/network")));
        Assert.Equal(0, (await GetPublicAsync(anonymous, "/v1/workers")).GetArrayLength());

        // Two blobs pinned by the operator (free), one worker with two slots, one job that completes, one that waits.
        using var operatorHttp = network.Client(network.Operator.Key);
        var raw = await operatorHttp.PinAsync(SeededData.Bytes(10_007, seed: 4, output));
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        var workerOperator = await network.CreateOperatorAsync();
        await network.StartWorkerAsync(workerOperator.Key, slots: 2, region: "view-east");
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        var done = await http.WaitForAsync((await SubmitAsync(http, vector, "view-east")).Id, j => j.Status is "completed" or "failed", "the job finished");
        Assert.Equal("completed", done.Status);
        // The rate counts the last minute's jobs: read it now, while the one that just finished is inside that minute.
        await Eventually.UntilAsync(async () => Read(await GetPublicAsync(anonymous, "/v1/network")).JobsPerMinute, n => n == 1,
            TimeSpan.FromSeconds(20), "one job in the last minute");
        await http.WaitForAsync((await SubmitAsync(http, vector, "view-nowhere")).Id, j => j.Status == "queued", "the second job queued");

        // The worker pinned the completed job's output: the third blob.
        var outputCid = Assert.Single(done.Outputs!).Value;
        using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v1/blobs/{outputCid}"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        var outputBytes = head.Content.Headers.ContentLength!.Value;
        // What the completed job minted, from the rewards ledger once it is settled.
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));
        await Eventually.UntilAsync(() => rewards.ExecuteScalarAsync<string>("select status from escrows where job_id = @id", new { id = done.Id }),
            s => s == "settled", TimeSpan.FromSeconds(30), "the completed job settled");
        var minted = await rewards.ExecuteScalarAsync<decimal>(
            "select coalesce(sum(amount), 0) from postings where account_id = @op and kind in ('mint', 'efficiency-bonus')", new { op = workerOperator.AccountId });
        output.WriteLine($"minted {minted}, pinned {raw.Size} + {vector.Size} + {outputBytes} bytes");

        var workers = await GetPublicAsync(anonymous, "/v1/workers");
        var worker = Assert.Single(workers.EnumerateArray());
        var kinds = worker.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("kind").GetString()!).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(kinds);
        var expected = new Counts(1, 0, "view-east=1", string.Join(',', kinds.Select(k => $"{k}=1")), 2, 0, 0, 1, 1, minted,
            raw.Size + vector.Size + outputBytes, 3, "jobs=1,extraAttempts=0,overhead=0,spotChecked=0,mismatches=0", 1, "");
        // Pins and mints reach the view through messages: wait for them, then every count is exact. (The jobs-per-minute
        // figure was checked above: on a slow run the job may have left the last minute by now.)
        var counts = await Eventually.UntilAsync(async () => Read(await GetPublicAsync(anonymous, "/v1/network")) with { JobsPerMinute = 1 }, c => c == expected,
            TimeSpan.FromSeconds(30), $"the network view to show {expected}");
        Assert.Equal(expected, counts);

        // The one worker's entry, as anyone sees it.
        Assert.Equal(done.Attempts.Single().WorkerId, worker.GetProperty("workerId").GetString());
        Assert.Equal(workerOperator.AccountId, worker.GetProperty("operatorAccountId").GetString());
        Assert.Equal("view-east", worker.GetProperty("region").GetString());
        Assert.True(worker.GetProperty("online").GetBoolean());
        Assert.Equal(2, worker.GetProperty("slots").GetInt32());
        Assert.Equal(0, worker.GetProperty("active").GetInt32());
        Assert.Contains("vector-add", worker.GetProperty("kernels").EnumerateArray().Select(k => k.GetString()));
        Assert.True(worker.GetProperty("gflopsPerKernel").GetProperty("vector-add").GetDouble() > 0);
        Assert.Equal(Network.OperatorStake, worker.GetProperty("operatorStake").GetDecimal());
        Assert.False(string.IsNullOrEmpty(worker.GetProperty("publicKey").GetString()));
        Assert.InRange(worker.GetProperty("lastSeenAt").GetDateTimeOffset(), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.Equal(1, worker.GetProperty("energy").GetProperty("jobs").GetInt64());
    }
}

/// <summary>Scale-out: two scheduler instances on the same database and broker.</summary>
public sealed class ScaleOutTests(TwoSchedulerNetwork network, ITestOutputHelper output) : IClassFixture<TwoSchedulerNetwork>
{
    [Fact]
    public async Task Two_schedulers_and_a_thousand_jobs_assign_no_job_twice()
    {
        const int jobs = 1000;
        var client = await network.CreateAccountAsync("client", 10_000m);
        using var http = network.Client(client.Key);
        var vector = await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4));
        foreach (var _ in Enumerable.Range(0, 2))
            await network.StartWorkerAsync((await network.CreateOperatorAsync()).Key, slots: 4);

        await Parallel.ForEachAsync(Enumerable.Range(0, jobs), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, ct) =>
        {
            using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid } });
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        });

        await using var scheduler = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        await Eventually.UntilAsync(() => scheduler.ExecuteScalarAsync<int>("select count(*) from jobs where status = 'completed'"),
            n => n == jobs, TimeSpan.FromMinutes(5), "every job completed");
        // One accepted attempt per job. A job may have been retried: on a loaded machine a node can miss its
        // heartbeats or its attempt's deadline, and the attempt then ends and the job is queued again. What must never
        // happen is a second assignment while the first stands: every attempt is created by the one update that takes
        // the job from queued (and counts it in attempt_count), and every attempt but the accepted one ended as a retry.
        var attempts = (await scheduler.QueryAsync<(string JobId, string Status, string? Reason)>(
            "select job_id, status, reason from attempts order by job_id, assigned_at")).ToList();
        var retried = attempts.Where(a => a.Status != "accepted").ToList();
        output.WriteLine($"{attempts.Count} attempts for {jobs} jobs; retried: {string.Join(", ", retried.GroupBy(a => $"{a.Status}/{a.Reason}").Select(g => $"{g.Key} x{g.Count()}"))}");
        Assert.Equal(jobs, attempts.Count(a => a.Status == "accepted"));
        Assert.Equal(jobs, attempts.Where(a => a.Status == "accepted").Select(a => a.JobId).Distinct().Count());
        Assert.All(retried, a => Assert.Contains(a.Reason, new[] { JobReasons.WorkerLost, JobReasons.LeaseExpired, JobReasons.AttemptOverdue }));
        Assert.Equal(attempts.Count, await scheduler.ExecuteScalarAsync<int>("select coalesce(sum(attempt_count), 0)::int from jobs"));
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));
        await Eventually.UntilAsync(() => rewards.ExecuteScalarAsync<int>("select count(*) from escrows where status = 'settled'"),
            n => n == jobs, TimeSpan.FromMinutes(2), "every job settled once");
        Assert.Equal(jobs, await rewards.ExecuteScalarAsync<int>("select count(*) from transactions where idempotency_key like 'settle:%'"));
    }
}
