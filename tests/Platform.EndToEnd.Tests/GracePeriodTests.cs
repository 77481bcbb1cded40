using System.Net;
using System.Net.Http.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Fast beats and a short lease, but a twenty-second grace period: a worker silent for three beats (600 ms) gets no
/// new work and its lease (1 s) runs out quickly, yet its running work is only taken after twenty seconds of
/// silence. Twenty, not less, because after a broker restart each process reconnects on its own backoff, so the
/// worker's beats can resume several seconds after the scheduler's endpoints do, more on a slow machine; the
/// product's default is 60 s. Workers run each kernel after a delay, so a job is still running while a test
/// pauses or restarts something.
/// </summary>
public sealed class GraceNetwork : Network
{
    public static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(20);

    protected override bool StartsWorker => false;

    protected override Dictionary<string, string?> SchedulerOverrides => new()
    {
        ["Scheduler__HeartbeatInterval"] = "00:00:00.200",
        ["Scheduler__LeaseDuration"] = "00:00:01",
        ["Scheduler__GracePeriod"] = GracePeriod.ToString(),
    };

    public Task<ServiceProcess> StartSlowWorkerAsync(string operatorKey, string region, TimeSpan kernelDelay) =>
        StartWorkerAsync(operatorKey, region: region, settings: new()
        {
            ["Worker__HeartbeatInterval"] = "00:00:00.100",
            ["Worker__Faults__KernelDelay"] = kernelDelay.ToString(),
        });
}

/// <summary>Blips shorter than the grace period never move running work; longer silences do, and say why.</summary>
public sealed class GracePeriodTests(GraceNetwork network) : IClassFixture<GraceNetwork>
{
    private sealed record Held(bool Online, bool LeasePassed);

    private async Task<(HttpClient Http, Pinned Vector)> ClientAsync()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        return (network.Client(client.Key), vector);
    }

    private static async Task<Job> SubmitAsync(HttpClient http, Pinned vector, string region)
    {
        using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid }, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Job>(Api.Json))!;
    }

    /// <summary>What the scheduler thinks of the worker and of the job's lease, from its own database.</summary>
    private async Task<Held> SchedulerViewAsync(string workerId, string jobId)
    {
        await using var connection = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        return await connection.QuerySingleAsync<Held>(
            """
            select w.online as Online, coalesce(j.lease_deadline < now(), false) as LeasePassed
            from workers w, jobs j where w.id = @workerId and j.id = @jobId
            """, new { workerId, jobId });
    }

    private async Task<int> SchedulerAttemptsAsync(string jobId)
    {
        await using var connection = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        return await connection.ExecuteScalarAsync<int>("select count(*) from attempts where job_id = @jobId", new { jobId });
    }

    private sealed record AttemptRow(string Id, string Status, DateTime? FinishedAt);

    /// <summary>The job's current attempt as the scheduler's database has it.</summary>
    private async Task<AttemptRow> SchedulerAttemptAsync(string attemptId)
    {
        await using var connection = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        return await connection.QuerySingleAsync<AttemptRow>(
            "select id as Id, status as Status, finished_at as FinishedAt from attempts where id = @attemptId", new { attemptId });
    }

    /// <summary>
    /// The database's clock, which also stamps when the scheduler received each result: comparing the two needs no
    /// agreement between clocks.
    /// </summary>
    private async Task<DateTime> DatabaseNowAsync()
    {
        await using var connection = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        return await connection.ExecuteScalarAsync<DateTime>("select clock_timestamp()");
    }

    /// <summary>
    /// Proves the attempt was still running when something happened at <paramref name="since"/>: the scheduler
    /// received its result only after that. A result sent earlier would have ended the attempt before it.
    /// </summary>
    private async Task AssertFinishedAfterAsync(string attemptId, DateTime since, string what)
    {
        var attempt = await SchedulerAttemptAsync(attemptId);
        Assert.NotNull(attempt.FinishedAt);
        Assert.True(attempt.FinishedAt > since, $"attempt {attemptId}'s result arrived at {attempt.FinishedAt:O}, before {what} at {since:O}: the job did not run through it");
    }

    /// <summary>The job's whole event stream (it ends with the terminal status).</summary>
    private static async Task<string> EventsAsync(HttpClient http, string jobId)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await http.GetStringAsync(new Uri($"/v1/jobs/{jobId}/events", UriKind.Relative), cts.Token);
    }

    [Fact]
    public async Task A_worker_paused_for_less_than_the_grace_period_resumes_and_completes_its_job_without_reassignment()
    {
        var (http, vector) = await ClientAsync();
        // The kernel takes eight seconds, so the pause (a second or two after the job starts) falls inside it.
        var worker = await network.StartSlowWorkerAsync((await network.CreateOperatorAsync()).Key, "blip", TimeSpan.FromSeconds(8));
        var job = await SubmitAsync(http, vector, "blip");
        var running = await http.WaitForAsync(job.Id, j => j.Status == "running", "the job running on the slow worker");
        var runningAttempt = Assert.Single(running.Attempts);
        var workerId = runningAttempt.WorkerId;

        DateTime resumedAfter;
        await worker.PauseAsync();
        try
        {
            // Paused until the scheduler has noticed: no new work for the worker, and the attempt's lease has passed.
            var held = await Eventually.UntilAsync(() => SchedulerViewAsync(workerId, job.Id), h => !h.Online && h.LeasePassed,
                GraceNetwork.GracePeriod, "the scheduler to mark the paused worker offline and its lease to pass");
            Assert.False(held.Online);
            // The attempt is still running with the worker frozen, after the scheduler had all this time to take a result
            // sent before the pause: the pause caught the worker mid-job, not after it had finished.
            var frozen = await SchedulerAttemptAsync(runningAttempt.AttemptId);
            Assert.Equal("running", frozen.Status);
            Assert.Null(frozen.FinishedAt);
            resumedAfter = await DatabaseNowAsync();
        }
        finally
        {
            await worker.ResumeAsync();
        }

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "the job finished");
        Assert.Equal("completed", done.Status);
        var attempt = Assert.Single(done.Attempts);
        Assert.Equal(runningAttempt.AttemptId, attempt.AttemptId);
        Assert.Equal(workerId, attempt.WorkerId);
        Assert.Equal("accepted", attempt.Status);
        await AssertFinishedAfterAsync(attempt.AttemptId, resumedAfter, "the worker was resumed");
        Assert.Equal(1, await SchedulerAttemptsAsync(job.Id));
        Assert.Equal("accepted", done.StatusReason?.Code);
        Assert.Contains(workerId, done.StatusReason!.Message, StringComparison.Ordinal);
        var events = await EventsAsync(http, job.Id);
        Assert.DoesNotContain("worker_lost", events, StringComparison.Ordinal);
        Assert.DoesNotContain("lease_expired", events, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => SchedulerViewAsync(workerId, job.Id), h => h.Online, TimeSpan.FromSeconds(10), "the worker online again");
    }

    [Fact]
    public async Task A_worker_paused_for_longer_than_the_grace_period_is_lost_and_its_job_completes_on_another()
    {
        var (http, vector) = await ClientAsync();
        var paused = await network.StartSlowWorkerAsync((await network.CreateOperatorAsync()).Key, "long-pause", TimeSpan.FromSeconds(4));
        var job = await SubmitAsync(http, vector, "long-pause");
        var running = await http.WaitForAsync(job.Id, j => j.Status == "running", "the job running on the slow worker");
        var lostWorker = Assert.Single(running.Attempts).WorkerId;

        await paused.PauseAsync();
        try
        {
            var requeued = await http.WaitForAsync(job.Id, j => j.Attempts.Any(a => a.StatusReason?.Code == "worker_lost"), "the paused worker declared lost");
            var lost = Assert.Single(requeued.Attempts, a => a.WorkerId == lostWorker);
            Assert.Equal("failed", lost.Status);
            Assert.Contains($"Worker {lostWorker} stopped sending heartbeats for longer than the {JobReasons.Duration(GraceNetwork.GracePeriod)} grace period", lost.StatusReason!.Message, StringComparison.Ordinal);
            Assert.Contains("attempt 1 of 3", lost.StatusReason.Message, StringComparison.Ordinal);

            await network.StartSlowWorkerAsync((await network.CreateOperatorAsync()).Key, "long-pause", TimeSpan.Zero);
            var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "the job finished on the other worker");
            Assert.Equal("completed", done.Status);
            var accepted = Assert.Single(done.Attempts, a => a.Status == "accepted");
            Assert.NotEqual(lostWorker, accepted.WorkerId);
            Assert.Equal(2, await SchedulerAttemptsAsync(job.Id));
            Assert.Contains("worker_lost", await EventsAsync(http, job.Id), StringComparison.Ordinal);
        }
        finally
        {
            await paused.ResumeAsync();
        }
    }

    [Fact]
    public async Task A_scheduler_restart_while_a_job_runs_leaves_the_job_with_its_worker()
    {
        var (http, vector) = await ClientAsync();
        await network.StartSlowWorkerAsync((await network.CreateOperatorAsync()).Key, "restart", TimeSpan.FromSeconds(8));
        var job = await SubmitAsync(http, vector, "restart");
        var running = await http.WaitForAsync(job.Id, j => j.Status == "running", "the job running on the slow worker");
        var workerId = Assert.Single(running.Attempts).WorkerId;

        // The restarted scheduler finds the worker silent since it went down and the lease long past: it waits a
        // grace period from its start before judging, by which time the worker's beats have renewed everything.
        var restartedAt = await DatabaseNowAsync();
        await network.RestartAsync(network.Services.First(s => s.Service == "scheduler"));

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "the job finished");
        Assert.Equal("completed", done.Status);
        Assert.Equal(workerId, Assert.Single(done.Attempts).WorkerId);
        await AssertFinishedAfterAsync(done.Attempts[0].AttemptId, restartedAt, "the scheduler was restarted");
        Assert.Equal(1, await SchedulerAttemptsAsync(job.Id));
    }

    [Fact]
    public async Task A_broker_restart_while_a_job_runs_leaves_the_job_with_its_worker()
    {
        var (http, vector) = await ClientAsync();
        await network.StartSlowWorkerAsync((await network.CreateOperatorAsync()).Key, "broker-blip", TimeSpan.FromSeconds(8));
        var job = await SubmitAsync(http, vector, "broker-blip");
        var running = await http.WaitForAsync(job.Id, j => j.Status == "running", "the job running on the slow worker");
        var workerId = Assert.Single(running.Attempts).WorkerId;

        // No beat reaches the scheduler while the broker is down, and the lease (1 s) runs out; the scheduler's
        // endpoints fault, so it takes no work until a grace period after they are back, by which time the
        // worker's beats have renewed everything.
        var restartedAt = await DatabaseNowAsync();
        await network.Environment.Infrastructure.RestartRabbitMqAsync();

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "the job finished");
        Assert.Equal("completed", done.Status);
        Assert.Equal(workerId, Assert.Single(done.Attempts).WorkerId);
        await AssertFinishedAfterAsync(done.Attempts[0].AttemptId, restartedAt, "the broker was restarted");
        Assert.Equal(1, await SchedulerAttemptsAsync(job.Id));
        var events = await EventsAsync(http, job.Id);
        Assert.DoesNotContain("worker_lost", events, StringComparison.Ordinal);
        Assert.DoesNotContain("lease_expired", events, StringComparison.Ordinal);
    }
}
