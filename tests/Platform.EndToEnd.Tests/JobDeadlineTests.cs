using System.Net;
using System.Net.Http.Json;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

/// <summary>A network whose jobs must finish within eight seconds of the scheduler taking them, looked for every second.</summary>
public sealed class DeadlineNetwork : Network
{
    protected override bool StartsWorker => false;

    protected override Dictionary<string, string?> SchedulerOverrides => new()
    {
        ["Scheduler__JobDeadline"] = "00:00:08",
        ["Scheduler__JobDeadlineCheckInterval"] = "00:00:01",
    };
}

/// <summary>
/// Nothing stuck: a job that stopped moving, whether it waits for a node that never comes or sits with one that
/// never finishes, fails deadline_exceeded once it is past the scheduler's deadline, refunded exactly once, and a
/// running attempt's worker is told to stop and not paid. Real processes, broker and database.
/// </summary>
public sealed class JobDeadlineTests(DeadlineNetwork network) : IClassFixture<DeadlineNetwork>
{
    private async Task<(HttpClient Http, Job Job)> SubmitAsync(string region)
    {
        var client = await network.CreateAccountAsync("client", 10m);
        var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (http, (await response.Content.ReadFromJsonAsync<Job>(Api.Json))!);
    }

    [Fact]
    public async Task A_job_no_node_fits_fails_deadline_exceeded_and_is_refunded_once()
    {
        var (http, job) = await SubmitAsync("nowhere-at-all");
        using var _ = http;
        await http.WaitForAsync(job.Id, j => j.Status == "queued", "job queued");
        Assert.True((await http.AccountAsync()).Escrowed > 0);

        var failed = await http.WaitForAsync(job.Id, j => j.Status is "failed" or "completed" or "cancelled", "job given up");
        Assert.Equal("failed", failed.Status);
        Assert.Equal("deadline_exceeded", failed.StatusReason?.Code);
        Assert.Contains("it was queued", failed.StatusReason!.Message, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 10m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "refunded in full");
    }

    [Fact]
    public async Task A_job_whose_worker_never_finishes_fails_deadline_exceeded_the_worker_is_told_to_stop_and_nobody_is_paid()
    {
        var nodeOperator = await network.CreateOperatorAsync();
        // Beats and keeps its lease, but would take ten minutes over the kernel.
        var worker = await network.StartWorkerAsync(nodeOperator.Key, region: "never-finishes", settings: new() { ["Worker__Faults__KernelDelay"] = "00:10:00" });
        var (http, job) = await SubmitAsync("never-finishes");
        using var _ = http;
        await http.WaitForAsync(job.Id, j => j.Status == "running", "job running");

        var failed = await http.WaitForAsync(job.Id, j => j.Status is "failed" or "completed" or "cancelled", "job given up");
        Assert.Equal("failed", failed.Status);
        Assert.Equal("deadline_exceeded", failed.StatusReason?.Code);
        Assert.Contains("it was running", failed.StatusReason!.Message, StringComparison.Ordinal);
        Assert.Single(failed.Attempts);
        await worker.WaitForLogAsync("stopped: the job was cancelled");
        await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == 10m && a.Escrowed == 0m, TimeSpan.FromSeconds(30), "refunded in full");
        using var operatorHttp = network.Client(nodeOperator.Key);
        Assert.Equal(0m, (await operatorHttp.AccountAsync()).Earned);
    }
}
