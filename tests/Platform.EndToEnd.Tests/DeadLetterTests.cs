using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Dead letters are visible and replayable: a message whose consumer failed every retry (here rewards' JobCompleted,
/// while the ledger's database refused connections) waits in its queue's _error queue, `./platform dlq list` shows
/// it, and `./platform dlq replay` moves it back once the cause is gone, where the idempotent consumer settles the job
/// once, however often it is replayed. Real processes, broker and database.
/// </summary>
public sealed class DeadLetterTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    private async Task<(int Code, string Output)> DlqAsync(params string[] arguments)
    {
        var infrastructure = network.Environment.Infrastructure;
        var start = new ProcessStartInfo("bash") { WorkingDirectory = infrastructure.RepoRoot, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(infrastructure.RepoRoot, "platform"));
        start.ArgumentList.Add("dlq");
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment["ConnectionStrings__RabbitMq"] = network.Environment.RabbitMqUri;
        start.Environment["RabbitMq__ManagementUrl"] = infrastructure.RabbitMqManagementUri.ToString();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        var text = await stdout + await stderr;
        output.WriteLine($"$ platform dlq {string.Join(' ', arguments)} -> {process.ExitCode}\n{text}");
        return (process.ExitCode, text);
    }

    private async Task<long> ErrorQueueDepthAsync(string service)
    {
        var vhost = Uri.EscapeDataString(Uri.UnescapeDataString(new Uri(network.Environment.RabbitMqUri).AbsolutePath.TrimStart('/')));
        var queues = await network.Environment.Infrastructure.RabbitMqManagement.GetFromJsonAsync<List<QueueDepth>>($"api/queues/{vhost}?columns=name,messages");
        return queues!.Where(q => q.Name.StartsWith(service, StringComparison.Ordinal) && q.Name.EndsWith("_error", StringComparison.Ordinal)).Sum(q => q.Messages ?? 0);
    }

    private sealed record QueueDepth(string Name, long? Messages);

    [Fact]
    public async Task A_JobCompleted_dead_lettered_while_the_ledger_was_down_is_replayed_and_the_job_settled_exactly_once()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([4f, 5f, 6f], 3));
        // The job's output pinned beforehand: pinning it again asks the ledger for no fee, so the job completes
        // while the ledger's database is away, and only its JobCompleted has to wait for it.
        await operatorHttp.PinAsync(NpyArray.FromFloat32([8f, 10f, 12f], 3));
        // A worker of its own that takes three seconds over the kernel: time to take the ledger's database away mid-job.
        await network.StartWorkerAsync(network.Operator.Key, region: "dead-letters", settings: new() { ["Worker__Faults__KernelDelay"] = "00:00:03" });
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region = "dead-letters" } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "running", "job running");

        await network.WhileDatabaseDownAsync("rewards", async () =>
        {
            var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "job finished while the ledger is down");
            Assert.Equal("completed", done.Status);
            // Rewards' consumer retries for about nine seconds, then the message waits in its _error queue.
            return await Eventually.UntilAsync(() => ErrorQueueDepthAsync("rewards"), depth => depth > 0, TimeSpan.FromSeconds(60), "JobCompleted dead-lettered at rewards");
        });

        var listed = await DlqAsync("list");
        Assert.Equal(0, listed.Code);
        Assert.Matches(@"\d+\s+rewards[-\w]*job-completed[-\w]*_error", listed.Output);
        Assert.True((await http.AccountAsync()).Escrowed > 0, "the job's escrow is still held while its completion is a dead letter");

        var replayed = await DlqAsync("replay", "--all");
        Assert.Equal(0, replayed.Code);
        Assert.Contains("replayed", replayed.Output, StringComparison.Ordinal);
        // The broker's management statistics (which dlq reads too) are refreshed every few seconds.
        await Eventually.UntilAsync(() => ErrorQueueDepthAsync("rewards"), depth => depth == 0, TimeSpan.FromSeconds(30), "the error queue emptied");

        var settled = await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Escrowed == 0m, TimeSpan.FromSeconds(60), "the replayed completion settled the job");
        var cost = (await http.GetJobAsync(job.Id)).Cost!.Value;
        Assert.Equal(100m - cost, settled.Balance);
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));
        Assert.Equal(1, await rewards.ExecuteScalarAsync<int>("select count(*) from transactions where idempotency_key = @key", new { key = $"settle:{job.Id}" }));

        // Nothing left to replay, and a second replay changes nothing.
        Assert.StartsWith("0 dead letter", (await DlqAsync("list")).Output.Split('\n').Last(l => l.Length > 0), StringComparison.Ordinal);
        Assert.Equal(0, (await DlqAsync("replay", "--all")).Code);
        Assert.Equal(1, await rewards.ExecuteScalarAsync<int>("select count(*) from transactions where idempotency_key = @key", new { key = $"settle:{job.Id}" }));
    }
}
