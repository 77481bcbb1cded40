using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;

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
    public async Task Cancelled_job_is_refunded_and_cannot_be_cancelled_twice()
    {
        var (_, http, vector) = await ClientAsync(10m);
        var job = await SubmitAsync(http, vector, "nowhere");
        await http.WaitForAsync(job.Id, j => j.Status == "queued", "job queued");
        Assert.True((await http.AccountAsync()).Escrowed > 0);

        using var cancel = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);

        var done = await http.WaitForAsync(job.Id, j => j.Status == "cancelled", "job cancelled");
        Assert.Equal("cancelled_by_client", done.Error?.Reason);
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 10m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "escrow refunded");
        using var again = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task Network_view_is_public_and_counts_what_happened()
    {
        using var anonymous = network.Client(null);

        var view = await anonymous.GetFromJsonAsync<JsonElement>("/v1/network");

        Assert.True(view.GetProperty("workersOnline").GetInt32() >= 0);
        Assert.True(view.GetProperty("bytesPinned").GetInt64() >= 0);
        Assert.Equal(JsonValueKind.Array, (await anonymous.GetFromJsonAsync<JsonElement>("/v1/workers")).ValueKind);
    }
}

/// <summary>Scale-out: two scheduler instances on the same database and broker.</summary>
public sealed class ScaleOutTests(TwoSchedulerNetwork network) : IClassFixture<TwoSchedulerNetwork>
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
        Assert.Equal(0, await scheduler.ExecuteScalarAsync<int>("select count(*) from (select job_id from attempts group by job_id having count(*) > 1) twice"));
        Assert.Equal(jobs, await scheduler.ExecuteScalarAsync<int>("select count(*) from attempts where status = 'accepted'"));
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));
        await Eventually.UntilAsync(() => rewards.ExecuteScalarAsync<int>("select count(*) from escrows where status = 'settled'"),
            n => n == jobs, TimeSpan.FromMinutes(2), "every job settled once");
        Assert.Equal(jobs, await rewards.ExecuteScalarAsync<int>("select count(*) from transactions where idempotency_key like 'settle:%'"));
    }
}
