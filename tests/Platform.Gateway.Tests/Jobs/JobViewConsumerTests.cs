using System.Text.Json;
using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Gateway.Jobs;
using Platform.Testing;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>The job read model under redelivered and reordered events, on a real Postgres.</summary>
public sealed class JobViewConsumerTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-views");
        _host = await ConsumerTestHost.StartAsync(_env, "gateway", typeof(Program).Assembly, bus => bus.AddJobs());
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<JobId> InsertPendingJobAsync()
    {
        var id = JobId.New();
        var spec = new JobSpec { Kernel = "matmul", Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) } };
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync(
            "insert into jobs (id, client_account_id, kernel, spec, status, status_rank, created_at, updated_at) values (@id, 'acc_x', 'matmul', @spec::jsonb, 'pending', 0, now(), now())",
            new { id = id.Value, spec = JsonSerializer.Serialize(spec, PlatformJson.Options) });
        return id;
    }

    private async Task<JobView> ViewAsync(JobId id) => (await JobViewStore.LoadAsync(_host.Database, id.Value, CancellationToken.None))!;

    private async Task DeliverAsync<T>(T message, Func<T, bool> sameMessage) where T : class
    {
        await _host.Harness.Bus.Publish(message);
        Assert.True(await _host.Harness.Consumed.Any<T>(m => sameMessage(m.Context.Message)));
    }

    private static JobStatusChanged Changed(JobId job, string status, WorkerId worker, AttemptId attempt, DateTimeOffset? at = null) => new()
    {
        JobId = job,
        Status = status,
        WorkerId = worker,
        AttemptId = attempt,
        OccurredAt = at ?? DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task A_late_running_event_does_not_undo_completion()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var output = Cid.Compute("c"u8);

        await DeliverAsync(new JobCompleted
        {
            JobId = job,
            ClientAccountId = AccountId.New(),
            AttemptId = attempt,
            WorkerId = worker,
            OperatorAccountId = AccountId.New(),
            Kernel = "matmul",
            Outputs = new Dictionary<string, Cid> { ["c"] = output },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            Signature = "c2ln",
            OccurredAt = DateTimeOffset.UtcNow,
        }, m => m.JobId == job);
        var running = Changed(job, "running", worker, attempt);
        await DeliverAsync(running, m => m.JobId == job && m.Status == "running");

        var view = await ViewAsync(job);
        Assert.Equal("completed", view.Status);
        Assert.Equal(output.Value, view.Outputs!["c"]);
        var only = Assert.Single(view.Attempts);
        Assert.Equal("accepted", only.Status);
        Assert.Equal("c2ln", only.Signature);
        Assert.NotNull(view.CompletedAt);
    }

    [Fact]
    public async Task The_latest_status_wins_whatever_the_delivery_order()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var start = DateTimeOffset.UtcNow;

        await DeliverAsync(Changed(job, "running", worker, attempt, start.AddSeconds(3)), m => m.JobId == job && m.Status == "running");
        await DeliverAsync(Changed(job, "queued", worker, attempt, start.AddSeconds(1)), m => m.JobId == job && m.Status == "queued");
        await DeliverAsync(Changed(job, "assigned", worker, attempt, start.AddSeconds(2)), m => m.JobId == job && m.Status == "assigned");

        Assert.Equal("running", (await ViewAsync(job)).Status);
    }

    [Fact]
    public async Task A_job_whose_worker_was_lost_shows_as_queued_again()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var start = DateTimeOffset.UtcNow;
        await DeliverAsync(Changed(job, "running", worker, attempt, start.AddSeconds(1)), m => m.JobId == job && m.Status == "running");

        await DeliverAsync(Changed(job, "queued", worker, attempt, start.AddSeconds(2)) with { Reason = "worker_lost" }, m => m.JobId == job && m.Status == "queued");

        var view = await ViewAsync(job);
        Assert.Equal("queued", view.Status);
        Assert.Equal("failed", Assert.Single(view.Attempts).Status);
    }

    [Fact]
    public async Task Failure_keeps_its_reason_and_is_final()
    {
        var job = await InsertPendingJobAsync();

        await DeliverAsync(new JobFailed { JobId = job, ClientAccountId = AccountId.New(), Reason = "input_invalid", Detail = "a is truncated", OccurredAt = DateTimeOffset.UtcNow },
            m => m.JobId == job);
        await DeliverAsync(new JobRejected { JobId = job, Reason = "insufficient_credits", Detail = "late", OccurredAt = DateTimeOffset.UtcNow }, m => m.JobId == job);

        var view = await ViewAsync(job);
        Assert.Equal("failed", view.Status);
        Assert.Equal(new JobError("input_invalid", "a is truncated"), view.Error);
    }

    [Fact]
    public async Task Settlement_records_the_cost()
    {
        var job = await InsertPendingJobAsync();

        await DeliverAsync(new PaymentSettled
        {
            JobId = job,
            ClientAccountId = AccountId.New(),
            Cost = 1.25m,
            Refunded = 0.75m,
            OperatorAccountId = AccountId.New(),
            OperatorPaid = 1.125m,
            OccurredAt = DateTimeOffset.UtcNow,
        }, m => m.JobId == job);

        Assert.Equal(1.25m, (await ViewAsync(job)).Cost);
    }
}
