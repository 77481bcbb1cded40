using System.Text.Json;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Gateway.Jobs;
using Platform.Hosting.Messaging;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>The job read model under redelivered and reordered events, on a real Postgres.</summary>
public sealed class JobViewConsumerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-views");
        // A wider batch window than the service's 5 ms, so a burst lands in few batches however slow the machine.
        _host = await ConsumerTestHost.StartAsync(_env, "gateway", typeof(Program).Assembly, bus => bus.AddJobs(new MessageBatching(64, TimeSpan.FromMilliseconds(200), 2)),
            services =>
            {
                services.AddSingleton<JobChangeSignal>();
                services.AddHostedService(provider => provider.GetRequiredService<JobChangeSignal>());
            });
    }

    public async Task DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync(); // fails the test if a consumer threw
        }
        finally
        {
            await _env.DisposeAsync();
        }
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

    [Fact]
    public async Task A_status_batch_wakes_the_event_streams_of_its_jobs_through_the_database_and_no_others()
    {
        var signal = _host.Services.GetRequiredService<JobChangeSignal>();
        await signal.Listening.WaitAsync(TimeSpan.FromSeconds(30));
        var job = await InsertPendingJobAsync();
        var other = await InsertPendingJobAsync();
        var woken = signal.Watch(job.Value);
        var untouched = signal.Watch(other.Value);

        await DeliverAsync(Changed(job, "queued", WorkerId.New(), AttemptId.New()) with { Version = 1 });

        // Only a notification completes a watch: the commit's NOTIFY, through the listening connection.
        await woken.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(untouched.IsCompleted, "a job the batch did not change was woken");
        Assert.Equal("queued", (await ViewAsync(job)).Status);
    }

    [Fact]
    public async Task A_bundle_changing_hundreds_of_jobs_of_a_batch_wakes_the_batchs_stream_and_every_jobs()
    {
        var signal = _host.Services.GetRequiredService<JobChangeSignal>();
        await signal.Listening.WaitAsync(TimeSpan.FromSeconds(30));
        var batch = "bat_" + Guid.NewGuid().ToString("n");
        var jobs = new List<JobId>();
        for (var i = 0; i < 300; i++)
            jobs.Add(await InsertPendingJobAsync());
        await using (var connection = await _host.Database.OpenConnectionAsync())
            await connection.ExecuteAsync("update jobs set batch_id = @batch where id = any(@ids)", new { batch, ids = jobs.Select(j => j.Value).ToArray() });
        var batchWoken = signal.Watch(batch);
        var lastWoken = signal.Watch(jobs[^1].Value);

        // 300 job ids are more than one notification's 8,000 bytes hold: they go out in several.
        await _host.PublishHandledAsync(Bundle.Of([.. jobs.Select(job => Changed(job, "queued", WorkerId.New(), AttemptId.New()) with { Version = 1 })]));

        await batchWoken.WaitAsync(TimeSpan.FromSeconds(30));
        await lastWoken.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("queued", (await ViewAsync(jobs[^1])).Status);
        _host.AssertNoConsumerFaulted();
    }

    private async Task<JobView> ViewAsync(JobId id) => (await JobViewStore.LoadAsync(_host.Database, id.Value, CancellationToken.None))!;

    /// <summary>Publishes the event and waits until the view's consumer handled it without a fault.</summary>
    private Task DeliverAsync<T>(T message) where T : class => _host.PublishHandledAsync(message);

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
        });
        var running = Changed(job, "running", worker, attempt);
        await DeliverAsync(running);

        var view = await ViewAsync(job);
        Assert.Equal("completed", view.Status);
        Assert.Equal(output.Value, view.Outputs!["c"]);
        var only = Assert.Single(view.Attempts);
        Assert.Equal("accepted", only.Status);
        Assert.Equal("c2ln", only.Signature);
        Assert.NotNull(view.CompletedAt);
    }

    [Theory]
    [InlineData("completion")]
    [InlineData("status")]
    [InlineData("settlement")]
    public async Task A_batch_waits_for_its_jobs_before_it_writes_any_attempt(string kind)
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();

        // Another batch holds the job: this one must queue behind it before writing anything else. Had it written the
        // attempt first (as before), a batch holding that attempt and waiting for the job would close a cycle.
        await using var holder = await _host.Database.OpenConnectionAsync();
        await using var held = await holder.BeginTransactionAsync();
        await holder.ExecuteAsync("select 1 from jobs where id = @id for update", new { id = job.Value }, held);
        object message = kind switch
        {
            "completion" => Bundle.Of(new JobCompleted
            {
                JobId = job,
                ClientAccountId = AccountId.New(),
                AttemptId = attempt,
                WorkerId = worker,
                OperatorAccountId = AccountId.New(),
                Kernel = "matmul",
                Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
                Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
                Signature = "c2ln",
                OccurredAt = DateTimeOffset.UtcNow,
            }),
            "status" => Bundle.Of(Changed(job, "running", worker, attempt)),
            _ => Bundle.Of(new PaymentSettled
            {
                JobId = job,
                ClientAccountId = AccountId.New(),
                Cost = 1m,
                Refunded = 0m,
                OperatorAccountId = AccountId.New(),
                OperatorPaid = 1m,
                OccurredAt = DateTimeOffset.UtcNow,
            }),
        };
        await _host.Harness.Bus.Publish(message);

        // The consumer's backend waits for the job's lock, holding none on job_attempts: it wrote no attempt yet. (Read
        // from another connection: a transaction sees one snapshot of pg_stat_activity.)
        await using var observer = await _host.Database.OpenConnectionAsync();
        var waiter = await Eventually.UntilAsync(() => observer.QuerySingleOrDefaultAsync<int?>(
            """
            select pid from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'
              and query like '%from jobs where id = any%for update%'
            """), pid => pid is not null, TimeSpan.FromSeconds(30), "the batch to wait for the job");
        Assert.Equal(0, await observer.ExecuteScalarAsync<int>(
            "select count(*) from pg_locks where pid = @pid and relation = 'job_attempts'::regclass", new { pid = waiter }));
        await held.CommitAsync();

        var view = await Eventually.UntilAsync(() => ViewAsync(job), v => kind switch
        {
            "completion" => v.Status == "completed",
            "status" => v.Status == "running",
            _ => v.Cost == 1m,
        }, TimeSpan.FromSeconds(30), $"the {kind} applied");
        Assert.NotNull(view);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task The_latest_status_wins_whatever_the_delivery_order()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var start = DateTimeOffset.UtcNow;

        await DeliverAsync(Changed(job, "running", worker, attempt, start.AddSeconds(3)));
        await DeliverAsync(Changed(job, "queued", worker, attempt, start.AddSeconds(1)));
        await DeliverAsync(Changed(job, "assigned", worker, attempt, start.AddSeconds(2)));

        Assert.Equal("running", (await ViewAsync(job)).Status);
    }

    [Fact]
    public async Task A_job_whose_worker_was_lost_shows_as_queued_again()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var start = DateTimeOffset.UtcNow;
        await DeliverAsync(Changed(job, "running", worker, attempt, start.AddSeconds(1)));

        await DeliverAsync(Changed(job, "queued", worker, attempt, start.AddSeconds(2)) with { Reason = "worker_lost" });

        var view = await ViewAsync(job);
        Assert.Equal("queued", view.Status);
        Assert.Equal("failed", Assert.Single(view.Attempts).Status);
    }

    [Fact]
    public async Task Failure_keeps_its_reason_and_is_final()
    {
        var job = await InsertPendingJobAsync();

        await DeliverAsync(new JobFailed { JobId = job, ClientAccountId = AccountId.New(), Reason = "input_invalid", Detail = "a is truncated", OccurredAt = DateTimeOffset.UtcNow });
        await DeliverAsync(new JobRejected { JobId = job, Reason = "insufficient_credits", Detail = "late", OccurredAt = DateTimeOffset.UtcNow });

        var view = await ViewAsync(job);
        Assert.Equal("failed", view.Status);
        Assert.Equal(new JobError("input_invalid", "a is truncated"), view.Error);
    }

    private async Task<IReadOnlyList<JobStatusChange>> EventsAsync(JobId job)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return await JobEventLog.AfterAsync(connection, job.Value, -1, CancellationToken.None);
    }

    [Fact]
    public async Task Every_terminal_status_carries_a_reason_code_and_a_sentence_in_the_view_and_the_event_stream()
    {
        var worker = WorkerId.New();
        var attempt = AttemptId.New();

        var completed = await InsertPendingJobAsync();
        var because = $"Accepted the signed result of worker {worker}.";
        await DeliverAsync(Changed(completed, "completed", worker, attempt) with { Version = 1, Reason = JobReasons.Accepted, Detail = because, AttemptStatus = "accepted" });
        await DeliverAsync(new JobCompleted
        {
            JobId = completed,
            ClientAccountId = AccountId.New(),
            AttemptId = attempt,
            WorkerId = worker,
            OperatorAccountId = AccountId.New(),
            Kernel = "matmul",
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            Reason = JobReasons.Accepted,
            Detail = because,
            OccurredAt = DateTimeOffset.UtcNow,
        });
        var done = await ViewAsync(completed);
        Assert.Equal(new StatusReason(JobReasons.Accepted, because), done.StatusReason);
        Assert.Null(done.Error); // completions are not errors
        Assert.Equal(JobReasons.Accepted, Assert.Single(done.Attempts).StatusReason?.Code);
        Assert.Equal(because, Assert.Single(await EventsAsync(completed)).Message);

        var failed = await InsertPendingJobAsync();
        var lost = $"Worker {worker} stopped sending heartbeats for longer than the 60 s grace period.";
        await DeliverAsync(Changed(failed, "failed", worker, AttemptId.New()) with
        {
            Version = 1,
            Reason = JobReasons.AttemptsExhausted,
            Detail = "The job failed all 3 attempt(s) it was allowed: attempt 1 on w: worker_lost.",
            AttemptReason = JobReasons.WorkerLost,
            AttemptDetail = lost,
        });
        var failure = await ViewAsync(failed);
        Assert.Equal(JobReasons.AttemptsExhausted, failure.StatusReason?.Code);
        Assert.StartsWith("The job failed all 3 attempt(s)", failure.StatusReason!.Message, StringComparison.Ordinal);
        Assert.Equal(new StatusReason(JobReasons.WorkerLost, lost), Assert.Single(failure.Attempts).StatusReason);
        Assert.Equal(JobReasons.AttemptsExhausted, failure.Error?.Reason);
        Assert.StartsWith("The job failed", Assert.Single(await EventsAsync(failed)).Message, StringComparison.Ordinal);

        var cancelled = await InsertPendingJobAsync();
        await DeliverAsync(new JobStatusChanged { JobId = cancelled, Status = "cancelled", Version = 1, Reason = JobReasons.CancelledByClient, OccurredAt = DateTimeOffset.UtcNow });
        var cancel = await ViewAsync(cancelled);
        Assert.Equal(new StatusReason(JobReasons.CancelledByClient, JobReasons.Find(JobReasons.CancelledByClient)!.Sentence), cancel.StatusReason);
        Assert.Equal(cancel.StatusReason!.Message, Assert.Single(await EventsAsync(cancelled)).Message);

        // Rewards writes short technical details: the catalogue's sentence carries them, and says what to do.
        var rejected = await InsertPendingJobAsync();
        await DeliverAsync(new JobRejected { JobId = rejected, Reason = JobReasons.InsufficientCredits, Detail = "the job costs 5 credits and the account has 2", OccurredAt = DateTimeOffset.UtcNow });
        var rejection = (await ViewAsync(rejected)).StatusReason!;
        Assert.Equal(JobReasons.InsufficientCredits, rejection.Code);
        Assert.Contains("the job costs 5 credits and the account has 2", rejection.Message, StringComparison.Ordinal);
        Assert.EndsWith(JobReasons.Find(JobReasons.InsufficientCredits)!.NextStep!, rejection.Message, StringComparison.Ordinal);
        Assert.Equal(rejection.Message, Assert.Single(await EventsAsync(rejected)).Message);
    }

    [Fact]
    public async Task A_live_job_has_no_status_reason_but_the_attempt_that_ended_says_why()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        await DeliverAsync(Changed(job, "queued", worker, attempt) with { Version = 1, AttemptStatus = "failed", Reason = JobReasons.WorkerError, Detail = "the worker failed: IOException" });

        var view = await ViewAsync(job);
        Assert.Null(view.StatusReason);
        var ended = Assert.Single(view.Attempts).StatusReason!;
        Assert.Equal(JobReasons.WorkerError, ended.Code);
        Assert.Contains("IOException", ended.Message, StringComparison.Ordinal);
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
        });

        Assert.Equal(1.25m, (await ViewAsync(job)).Cost);
    }

    /// <summary>
    /// Makes the database note, for every row written from now on in jobs, job_attempts and job_events, its table and
    /// the transaction that wrote it; <see cref="WritesAsync"/> reads and forgets them.
    /// </summary>
    private async Task RecordWritesAsync()
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync("""
            create table test_writes (tbl text not null, txid bigint not null);
            create function test_note_write() returns trigger language plpgsql as $$
            begin insert into test_writes values (tg_table_name, txid_current()); return null; end $$;
            create trigger test_jobs after insert or update on jobs for each row execute function test_note_write();
            create trigger test_job_attempts after insert or update on job_attempts for each row execute function test_note_write();
            create trigger test_job_events after insert or update on job_events for each row execute function test_note_write();
            """);
    }

    private async Task<(string[] Tables, int Transactions)> WritesAsync()
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(string Tbl, long Txid)>("delete from test_writes returning tbl, txid")).ToList();
        return ([.. rows.Select(r => r.Tbl).Distinct().Order(StringComparer.Ordinal)], rows.Select(r => r.Txid).Distinct().Count());
    }

    [Fact]
    public async Task A_burst_of_status_changes_is_written_in_a_few_transactions_each_change_applied_once()
    {
        var jobs = new List<JobId>();
        for (var i = 0; i < 40; i++)
            jobs.Add(await InsertPendingJobAsync());
        await RecordWritesAsync();

        var changes = jobs.Select(j => Changed(j, "assigned", WorkerId.New(), AttemptId.New()) with { Version = 2 }).ToList();
        await Task.WhenAll(changes.Select(c => _host.Harness.Bus.Publish(Bundle.Of(c))));
        await _host.HandledAsync<JobStatusChanged>(m => jobs.Contains(m.JobId), count: jobs.Count);

        var (tables, transactions) = await WritesAsync();
        output.WriteLine($"{changes.Count} status changes written in {transactions} transaction(s)");
        Assert.Equal(["job_attempts", "job_events", "jobs"], tables);
        Assert.True(transactions <= changes.Count / 4, $"{changes.Count} status changes took {transactions} transactions");
        foreach (var job in jobs)
        {
            var view = await ViewAsync(job);
            Assert.Equal("assigned", view.Status);
            Assert.Equal("assigned", Assert.Single(view.Attempts).Status);
            Assert.Single(await EventsAsync(job));
        }
    }

    [Fact]
    public async Task A_burst_of_completions_and_settlements_is_written_in_a_few_transactions_each_applied_once()
    {
        var jobs = new List<JobId>();
        for (var i = 0; i < 40; i++)
            jobs.Add(await InsertPendingJobAsync());
        await RecordWritesAsync();

        var completions = jobs.Select(j => new JobCompleted
        {
            JobId = j,
            ClientAccountId = AccountId.New(),
            AttemptId = AttemptId.New(),
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.New(),
            Kernel = "matmul",
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute(System.Text.Encoding.UTF8.GetBytes(j.Value)) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            OccurredAt = DateTimeOffset.UtcNow,
        }).ToList();
        await Task.WhenAll(completions.Select(c => _host.Harness.Bus.Publish(Bundle.Of(c))));
        await _host.HandledAsync<JobCompleted>(m => jobs.Contains(m.JobId), count: jobs.Count);
        var (_, completedIn) = await WritesAsync();
        var settlements = jobs.Select(j => new PaymentSettled
        {
            JobId = j,
            ClientAccountId = AccountId.New(),
            Cost = 2m,
            Refunded = 0m,
            OperatorAccountId = AccountId.New(),
            OperatorPaid = 1.8m,
            OccurredAt = DateTimeOffset.UtcNow,
        }).ToList();
        // Each settlement twice: a redelivery in the same burst changes nothing.
        await Task.WhenAll(settlements.Concat(settlements).Select(m => _host.Harness.Bus.Publish(Bundle.Of(m))));
        await _host.HandledAsync<PaymentSettled>(m => jobs.Contains(m.JobId), count: 2 * jobs.Count);
        var (_, settledIn) = await WritesAsync();

        output.WriteLine($"{jobs.Count} completions written in {completedIn} transaction(s), {2 * jobs.Count} settlements in {settledIn}");
        Assert.True(completedIn <= jobs.Count / 4, $"{jobs.Count} completions took {completedIn} transactions");
        Assert.True(settledIn <= jobs.Count / 4, $"{2 * jobs.Count} settlements took {settledIn} transactions");
        foreach (var (job, completed) in jobs.Zip(completions))
        {
            var view = await ViewAsync(job);
            Assert.Equal("completed", view.Status);
            Assert.Equal(2m, view.Cost);
            Assert.Equal("accepted", Assert.Single(view.Attempts).Status);
            Assert.Equal(completed.Outputs["c"].Value, Assert.Single(view.Outputs!).Value);
        }
    }

    [Fact]
    public async Task Each_message_is_written_in_one_transaction_and_its_redelivery_changes_nothing()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        await RecordWritesAsync();

        var assigned = Changed(job, "assigned", worker, attempt) with { Version = 2 };
        await DeliverAsync(assigned);
        var (tables, transactions) = await WritesAsync();
        Assert.Equal(["job_attempts", "job_events", "jobs"], tables);
        Assert.Equal(1, transactions);
        var view = JsonSerializer.Serialize(await ViewAsync(job));

        await DeliverAsync(assigned);
        Assert.Equal(1, (await WritesAsync()).Transactions);
        Assert.Equal(view, JsonSerializer.Serialize(await ViewAsync(job)));
        Assert.Equal("assigned", Assert.Single((await ViewAsync(job)).Attempts).Status);
        Assert.Single(await EventsAsync(job));

        var rejected = await InsertPendingJobAsync();
        await WritesAsync();
        await DeliverAsync(new JobRejected { JobId = rejected, Reason = JobReasons.InsufficientCredits, Detail = "none left", OccurredAt = DateTimeOffset.UtcNow });
        (tables, transactions) = await WritesAsync();
        Assert.Equal(["job_events", "jobs"], tables);
        Assert.Equal(1, transactions);
        Assert.Equal("rejected", (await ViewAsync(rejected)).Status);
    }
}
