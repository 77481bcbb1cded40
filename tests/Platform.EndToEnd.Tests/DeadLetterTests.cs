using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts.Api;
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
public sealed class DeadLetterTests(ManualDeadLetterNetwork network, ITestOutputHelper output) : IClassFixture<ManualDeadLetterNetwork>
{
    private Task<(int Code, string Output)> DlqAsync(params string[] arguments) => DeadLetters.DlqAsync(network, output, arguments);

    private Task<long> ErrorQueueDepthAsync(string service) => DeadLetters.ErrorQueueDepthAsync(network, service);

    [Fact]
    public async Task A_JobCompleted_dead_lettered_while_the_ledger_was_down_is_replayed_and_the_job_settled_exactly_once()
    {
        var (http, job) = await DeadLetters.CompleteAJobWhileTheLedgerIsDownAsync(network);
        // The broker's management statistics (which dlq reads) are refreshed every few seconds.
        await Eventually.UntilAsync(() => ErrorQueueDepthAsync("rewards"), depth => depth > 0, TimeSpan.FromSeconds(30), "the dead letter in the statistics");

        var listed = await DlqAsync("list");
        Assert.Equal(0, listed.Code);
        Assert.Matches(@"\d+\s+rewards[-\w]*job-completed[-\w]*_error", listed.Output);
        Assert.True((await http.AccountAsync()).Escrowed > 0, "the job's escrow is still held while its completion is a dead letter");
        // Counted where the dashboard shows it (GET /v1/network, anonymous).
        using var anonymous = network.Client(null);
        await Eventually.UntilAsync(() => anonymous.GetFromJsonAsync<NetworkView>("/v1/network", Api.Json), n => n!.DeadLetters >= 1, TimeSpan.FromSeconds(30),
            "the dead letter counted in the network view");

        var replayed = await DlqAsync("replay", "--all");
        Assert.Equal(0, replayed.Code);
        Assert.Contains("replayed", replayed.Output, StringComparison.Ordinal);
        // The broker's management statistics (which dlq reads too) are refreshed every few seconds.
        await Eventually.UntilAsync(() => ErrorQueueDepthAsync("rewards"), depth => depth == 0, TimeSpan.FromSeconds(30), "the error queue emptied");

        await DeadLetters.AssertSettledOnceAsync(network, http, job);
        await Eventually.UntilAsync(() => anonymous.GetFromJsonAsync<NetworkView>("/v1/network", Api.Json), n => n!.DeadLetters == 0, TimeSpan.FromSeconds(30),
            "no dead letter counted once replayed");

        // Nothing left to replay, and a second replay changes nothing.
        Assert.StartsWith("0 dead letter", (await DlqAsync("list")).Output.Split('\n').Last(l => l.Length > 0), StringComparison.Ordinal);
        Assert.Equal(0, (await DlqAsync("replay", "--all")).Code);
        await DeadLetters.AssertSettledOnceAsync(network, http, job);
        http.Dispose();
    }
}

/// <summary>The network with the services' own dead-letter replay off: what waits in an _error queue stays there.</summary>
public sealed class ManualDeadLetterNetwork : Network
{
    protected override Dictionary<string, string?> ServiceSettings => new() { ["DeadLetters__Replay"] = "false" };
}

/// <summary>
/// The services' dead-letter reconciler, quickened: checks every second, first replay five seconds after the fault,
/// then ten; parked after two replays.
/// </summary>
public sealed class ReplayingNetwork : Network
{
    public const int MaxReplays = 2;

    protected override Dictionary<string, string?> ServiceSettings => new()
    {
        ["DeadLetters__CheckInterval"] = "00:00:01",
        ["DeadLetters__FirstReplayAfter"] = "00:00:05",
        ["DeadLetters__MaxReplays"] = MaxReplays.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Nothing stuck: a service sends its own dead letters back once their cause may be gone (DeadLetterReconciler), so a
/// JobCompleted dead-lettered while the ledger's database was down settles the job by itself, exactly once; one that
/// keeps failing is parked after its replays, with the count in its header, for `./platform dlq`.
/// </summary>
public sealed class DeadLetterReconcilerTests(ReplayingNetwork network, ITestOutputHelper output) : IClassFixture<ReplayingNetwork>
{
    [Fact]
    public async Task A_JobCompleted_dead_lettered_while_the_ledger_was_down_is_replayed_by_rewards_itself_and_settles_the_job_once()
    {
        var rewards = network.Services.First(s => s.Service == "rewards");
        var replaysBefore = DeadLetters.LogCount(rewards, "replayed to rewards-job-completed");
        var (http, job) = await DeadLetters.CompleteAJobWhileTheLedgerIsDownAsync(network);
        using var _ = http;
        // No dlq command: rewards replays its dead letter once it is due, and the database is back by then.
        await DeadLetters.AssertSettledOnceAsync(network, http, job);
        Assert.True(DeadLetters.LogCount(rewards, "replayed to rewards-job-completed") > replaysBefore, "rewards replayed the dead letter itself");
        await Eventually.UntilAsync(() => DeadLetters.PeekReplaysAsync(network, "rewards", job.Id), replays => replays is null, TimeSpan.FromSeconds(30),
            "nothing of the job left in the error queue");
    }

    [Fact]
    public async Task A_dead_letter_that_keeps_failing_is_parked_after_its_replays_and_a_manual_replay_still_settles_it()
    {
        Job? ours = null;
        var (http, job) = await DeadLetters.CompleteAJobWhileTheLedgerIsDownAsync(network, keepDown: async submitted =>
        {
            ours = submitted;
            // Each replay fails its nine seconds of retries again, and comes back with its count; after the last it stays.
            var parked = await Eventually.UntilAsync(() => DeadLetters.PeekReplaysAsync(network, "rewards", submitted.Id), replays => replays == ReplayingNetwork.MaxReplays,
                TimeSpan.FromSeconds(180), "the dead letter replayed twice and parked");
            output.WriteLine($"parked with {parked} replays");
        });
        using var _ = http;
        Assert.Equal(job.Id, ours!.Id);
        var rewards = network.Services.First(s => s.Service == "rewards");
        await Eventually.UntilAsync(() => Task.FromResult(rewards.Log()), log => log.Contains("parked after 2 replays", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
            "the parking logged as an error");
        // Parked: the database is back, but nothing replays it by itself (three more passes at least).
        var replays = DeadLetters.LogCount(rewards, "replayed to rewards-job-completed");
        await Eventually.UntilAsync(() => Task.FromResult(DeadLetters.LogCount(rewards, "Dead letters checked")), n => n >= 3, TimeSpan.FromSeconds(30), "three passes");
        Assert.Equal(replays, DeadLetters.LogCount(rewards, "replayed to rewards-job-completed"));
        Assert.Equal(ReplayingNetwork.MaxReplays, await DeadLetters.PeekReplaysAsync(network, "rewards", job.Id));
        Assert.True((await http.AccountAsync()).Escrowed > 0, "the parked completion still holds the escrow");

        Assert.Equal(0, (await DeadLetters.DlqAsync(network, output, "replay", "--all")).Code);
        await DeadLetters.AssertSettledOnceAsync(network, http, job);
    }
}

/// <summary>
/// Dead letters stay where they are (no replay) and rewards asks about escrows held five seconds, every second: the
/// reconciler that catches an ending lost for good.
/// </summary>
public sealed class LostEndingNetwork : Network
{
    protected override Dictionary<string, string?> ServiceSettings => new()
    {
        ["DeadLetters__Replay"] = "false",
        ["Pricing__EscrowCheckAfter"] = "00:00:05",
        ["Pricing__EscrowCheckInterval"] = "00:00:01",
    };
}

/// <summary>
/// Nothing stuck, even past a lost message: a job's JobCompleted dead-lettered and then lost (its error queue purged),
/// so rewards never hears the job ended and holds its escrow; rewards' escrow reconciler asks the scheduler, which
/// announces the same completion again from the job's record, and the job is settled exactly once.
/// </summary>
public sealed class LostEndingTests(LostEndingNetwork network) : IClassFixture<LostEndingNetwork>
{
    [Fact]
    public async Task A_completion_lost_for_good_is_announced_again_when_rewards_asks_and_the_job_is_settled_exactly_once()
    {
        var (http, job) = await DeadLetters.CompleteAJobWhileTheLedgerIsDownAsync(network, keepDown: async ended =>
        {
            // Lost: the dead letter is taken out of its error queue and dropped while the ledger is still away. Polled:
            // the fault is logged before MassTransit has declared the error queue and moved the message there.
            await Eventually.UntilAsync(() => DeadLetters.DropAsync(network, "rewards-job-completed_error", ended.Id), TimeSpan.FromSeconds(30), "the dead-lettered JobCompleted dropped from its error queue");
        });
        using var _ = http;
        var scheduler = network.Services.First(s => s.Service == "scheduler");
        var rewards = network.Services.First(s => s.Service == "rewards");

        await DeadLetters.AssertSettledOnceAsync(network, http, job);
        Assert.True(DeadLetters.LogCount(rewards, "asked the scheduler how the jobs ended") > 0, "rewards asked about the held escrow");
        Assert.True(DeadLetters.LogCount(scheduler, "Announced the ending of") > 0, "the scheduler announced the completion again");
        // Nothing was replayed: the ending came from the scheduler's record of the job.
        Assert.Equal(0, DeadLetters.LogCount(rewards, "replayed to"));
    }
}

/// <summary>The dead-letter scenario both suites share: a job completes while rewards' database refuses connections.</summary>
internal static class DeadLetters
{
    public static async Task<(int Code, string Output)> DlqAsync(Network network, ITestOutputHelper output, params string[] arguments)
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

    public static async Task<long> ErrorQueueDepthAsync(Network network, string service)
    {
        var queues = await network.Environment.Infrastructure.RabbitMqManagement.GetFromJsonAsync<List<QueueDepth>>($"api/queues/{Vhost(network)}?columns=name,messages");
        return queues!.Where(q => q.Name.StartsWith(service, StringComparison.Ordinal) && q.Name.EndsWith("_error", StringComparison.Ordinal)).Sum(q => q.Messages ?? 0);
    }

    private static string Vhost(Network network) =>
        Uri.EscapeDataString(Uri.UnescapeDataString(new Uri(network.Environment.RabbitMqUri).AbsolutePath.TrimStart('/')));

    private sealed record QueueDepth(string Name, long? Messages);

    /// <summary>
    /// The replay count (x-platform-replays) of the first message in <paramref name="service"/>'s job-completed error
    /// queue, looked at and put back (null when it is empty).
    /// </summary>
    public static async Task<int?> PeekReplaysAsync(Network network, string service, string jobId)
    {
        var management = network.Environment.Infrastructure.RabbitMqManagement;
        var queues = await management.GetFromJsonAsync<List<QueueDepth>>($"api/queues/{Vhost(network)}?columns=name,messages");
        var queue = queues!.FirstOrDefault(q => q.Name.StartsWith(service, StringComparison.Ordinal) && q.Name.Contains("job-completed", StringComparison.Ordinal) && q.Name.EndsWith("_error", StringComparison.Ordinal));
        if (queue is null)
            return null;
        using var response = await management.PostAsJsonAsync($"api/queues/{Vhost(network)}/{Uri.EscapeDataString(queue.Name)}/get",
            new { count = 100, ackmode = "ack_requeue_true", encoding = "auto" });
        response.EnsureSuccessStatusCode();
        using var messages = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        foreach (var message in messages.RootElement.EnumerateArray())
        {
            if (!message.GetProperty("payload").GetString()!.Contains(jobId, StringComparison.Ordinal))
                continue;
            var properties = message.GetProperty("properties");
            return properties.TryGetProperty("headers", out var headers) && headers.TryGetProperty("x-platform-replays", out var replays) ? replays.GetInt32() : 0;
        }
        return null;
    }

    /// <summary>
    /// Takes the messages in <paramref name="queue"/> off it for good (the queue is only this network's) and says whether
    /// one of them was about <paramref name="jobId"/>; false while the queue does not exist yet.
    /// </summary>
    public static async Task<bool> DropAsync(Network network, string queue, string jobId)
    {
        using var response = await network.Environment.Infrastructure.RabbitMqManagement.PostAsJsonAsync(
            $"api/queues/{Vhost(network)}/{Uri.EscapeDataString(queue)}/get", new { count = 100, ackmode = "ack_requeue_false", encoding = "auto" });
        if (response.StatusCode == HttpStatusCode.NotFound)
            return false;
        response.EnsureSuccessStatusCode();
        using var messages = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return messages.RootElement.EnumerateArray().Any(m => m.GetProperty("payload").GetString()!.Contains(jobId, StringComparison.Ordinal));
    }

    /// <summary>How many of <paramref name="service"/>'s log lines contain <paramref name="text"/>.</summary>
    public static int LogCount(ServiceProcess service, string text) => service.Log().Split('\n').Count(line => line.Contains(text, StringComparison.Ordinal));

    /// <summary>
    /// A job of a fresh client completes while rewards' database refuses connections, so its JobCompleted fails every
    /// retry and is dead-lettered; the database stays away until <paramref name="keepDown"/> (if any) returns too.
    /// </summary>
    public static async Task<(HttpClient Http, Job Job)> CompleteAJobWhileTheLedgerIsDownAsync(Network network, Func<Job, Task>? keepDown = null)
    {
        var rewards = network.Services.First(s => s.Service == "rewards");
        var client = await network.CreateAccountAsync("client", 100m);
        var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([4f, 5f, 6f], 3));
        // The job's output pinned beforehand: pinning it again asks the ledger for no fee, so the job completes
        // while the ledger's database is away, and only its JobCompleted has to wait for it.
        await operatorHttp.PinAsync(NpyArray.FromFloat32([8f, 10f, 12f], 3));
        // A worker of its own that takes three seconds over the kernel: time to take the ledger's database away mid-job.
        var region = "dead-letters-" + Guid.NewGuid().ToString("n")[..8];
        await network.StartWorkerAsync(network.Operator.Key, region: region, settings: new() { ["Worker__Faults__KernelDelay"] = "00:00:03" });
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "running", "job running");

        var faultsBefore = LogCount(rewards, "R-FAULT");
        await network.WhileDatabaseDownAsync("rewards", async () =>
        {
            var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "job finished while the ledger is down");
            Assert.Equal("completed", done.Status);
            // Rewards' consumer retries for about nine seconds, then MassTransit moves the message to its _error queue
            // (seen in its log at once; the broker's statistics lag by seconds).
            var faults = await Eventually.UntilAsync(() => Task.FromResult(LogCount(rewards, "R-FAULT")), n => n > faultsBefore, TimeSpan.FromSeconds(60),
                "JobCompleted dead-lettered at rewards");
            if (keepDown is not null)
                await keepDown(job);
            return faults;
        });
        return (http, job);
    }

    /// <summary>The job's escrow settled, with exactly one settle transaction, and the client charged its cost once.</summary>
    public static async Task AssertSettledOnceAsync(Network network, HttpClient http, Job job)
    {
        var settled = await Eventually.UntilAsync(() => http.AccountAsync(), a => a.Escrowed == 0m, TimeSpan.FromSeconds(60), "the replayed completion settled the job");
        // The job's cost reaches its view with the settlement's own event, which may follow the balance.
        var cost = (await Eventually.UntilAsync(() => http.GetJobAsync(job.Id), j => j.Cost is not null, TimeSpan.FromSeconds(30), "the job's cost in its view")).Cost!.Value;
        Assert.Equal(100m - cost, settled.Balance);
        // Not pooled: a pooled connection would not survive the next test's taking the database away.
        await using var rewards = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(network.Environment.PostgresConnectionStringFor("rewards")) { Pooling = false }.ConnectionString);
        Assert.Equal(1, await rewards.ExecuteScalarAsync<int>("select count(*) from transactions where idempotency_key = @key", new { key = $"settle:{job.Id}" }));
    }
}
