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

    /// <param name="at">When the job was submitted; now by default.</param>
    private async Task<JobId> InsertPendingJobAsync(DateTimeOffset? at = null)
    {
        var id = JobId.New();
        var spec = new JobSpec { Kernel = "matmul", Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) } };
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync(
            "insert into jobs (id, client_account_id, kernel, spec, status, status_rank, created_at, updated_at) values (@id, 'acc_x', 'matmul', @spec::jsonb, 'pending', 0, coalesce(@at, now()), coalesce(@at, now()))",
            new { id = id.Value, spec = JsonSerializer.Serialize(spec, PlatformJson.Options), at });
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
    public async Task A_replica_whose_start_is_heard_after_its_result_stays_submitted()
    {
        var job = await InsertPendingJobAsync();
        var worker = WorkerId.New();
        var attempt = AttemptId.New();
        var start = DateTimeOffset.UtcNow;

        // What two status batches committing out of order did in an end-to-end run: the result's change, then the start's.
        await DeliverAsync(Changed(job, "verifying", worker, attempt, start.AddSeconds(2)) with { AttemptStatus = "submitted" });
        await DeliverAsync(Changed(job, "running", worker, attempt, start.AddSeconds(1)) with { AttemptStatus = "running" });
        await DeliverAsync(Changed(job, "assigned", worker, attempt, start));

        var view = await ViewAsync(job);
        Assert.Equal("verifying", view.Status);
        Assert.Equal("submitted", Assert.Single(view.Attempts).Status);
        _host.AssertNoConsumerFaulted();
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

    /// <summary>
    /// Makes the database note every statement that writes jobs, job_attempts or job_events: its table and operation
    /// (an upsert notes an INSERT and an UPDATE); <see cref="StatementsAsync"/> reads and forgets them.
    /// </summary>
    private async Task RecordStatementsAsync()
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync("""
            create table test_statements (tbl text not null, op text not null);
            create function test_note_statement() returns trigger language plpgsql as $$
            begin insert into test_statements values (tg_table_name, tg_op); return null; end $$;
            create trigger test_jobs_statements after insert or update on jobs for each statement execute function test_note_statement();
            create trigger test_job_attempts_statements after insert or update on job_attempts for each statement execute function test_note_statement();
            create trigger test_job_events_statements after insert or update on job_events for each statement execute function test_note_statement();
            """);
    }

    private async Task<Dictionary<string, int>> StatementsAsync()
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        var rows = await connection.QueryAsync<(string Tbl, string Op)>("delete from test_statements returning tbl, op");
        return rows.GroupBy(r => $"{r.Op} {r.Tbl}").ToDictionary(g => g.Key, g => g.Count());
    }

    [Fact]
    public async Task A_bundle_of_hundreds_of_changes_is_written_with_a_statement_per_round_not_per_change()
    {
        var jobs = new List<JobId>();
        for (var i = 0; i < 50; i++)
            jobs.Add(await InsertPendingJobAsync());
        await RecordStatementsAsync();
        var worker = WorkerId.New();
        var at = DateTimeOffset.UtcNow;
        // Each job: assigned, running, its worker lost (queued again, the attempt failed), assigned to a second attempt.
        var changes = new List<JobStatusChanged>();
        var second = new Dictionary<JobId, AttemptId>();
        foreach (var job in jobs)
        {
            var first = AttemptId.New();
            second[job] = AttemptId.New();
            changes.Add(Changed(job, "assigned", worker, first, at) with { Version = 2 });
            changes.Add(Changed(job, "running", worker, first, at.AddMilliseconds(1)) with { Version = 3 });
            changes.Add(Changed(job, "queued", worker, first, at.AddMilliseconds(2)) with { Version = 4, AttemptReason = JobReasons.WorkerLost, AttemptDetail = "gone" });
            changes.Add(Changed(job, "assigned", worker, second[job], at.AddMilliseconds(3)) with { Version = 5 });
        }

        await _host.PublishHandledAsync(Bundle.Of([.. changes]));

        var statements = await StatementsAsync();
        output.WriteLine($"{changes.Count} changes of {jobs.Count} jobs: {string.Join(", ", statements.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} {s.Value}"))}");
        // A round per change of the same row: four of each job, three of its first attempt, the log in one.
        Assert.Equal(4, statements.GetValueOrDefault("UPDATE jobs"));
        Assert.Equal(3, statements.GetValueOrDefault("INSERT job_attempts"));
        Assert.Equal(1, statements.GetValueOrDefault("INSERT job_events"));
        foreach (var job in jobs)
        {
            var view = await ViewAsync(job);
            Assert.Equal("assigned", view.Status);
            Assert.Equal(["failed", "assigned"], view.Attempts.OrderBy(a => a.AttemptId == second[job].Value).Select(a => a.Status));
            Assert.Equal(StatusReason.Of(JobReasons.WorkerLost, "gone"), view.Attempts.Single(a => a.AttemptId != second[job].Value).StatusReason);
            Assert.Equal([2, 3, 4, 5], (await EventsAsync(job)).Select(e => e.Version));
            Assert.Equal(["assigned", "running", "queued", "assigned"], (await EventsAsync(job)).Select(e => e.Status));
        }
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_bundle_of_completions_with_replicas_and_a_repeat_accepts_every_attempt_once_with_its_place()
    {
        var jobs = new List<JobId>();
        for (var i = 0; i < 20; i++)
            jobs.Add(await InsertPendingJobAsync());
        await RecordStatementsAsync();
        // Every job two accepted replicas (the first is the one the receipt lists first), each job's completion twice.
        var completions = jobs.Select((job, i) => new JobCompleted
        {
            JobId = job,
            ClientAccountId = AccountId.New(),
            AttemptId = AttemptId.New(),
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.New(),
            Kernel = "matmul",
            Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute(System.Text.Encoding.UTF8.GetBytes(job.Value)) },
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            Accepted =
            [
                new AcceptedAttempt { AttemptId = AttemptId.New(), WorkerId = WorkerId.New(), OperatorAccountId = AccountId.New(),
                    Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu", Joules = 2 }, Signature = $"first{i}", PublicKey = $"key{i}a" },
                new AcceptedAttempt { AttemptId = AttemptId.New(), WorkerId = WorkerId.New(), OperatorAccountId = AccountId.New(),
                    Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu", Joules = 3 }, Signature = $"second{i}", PublicKey = $"key{i}b", SpotCheck = true },
            ],
            Reason = JobReasons.Verified,
            OccurredAt = DateTimeOffset.UtcNow,
        }).ToList();

        await _host.PublishHandledAsync(Bundle.Of([.. completions, .. completions]));

        var statements = await StatementsAsync();
        output.WriteLine($"{2 * completions.Count} completions of {jobs.Count} jobs: {string.Join(", ", statements.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} {s.Value}"))}");
        Assert.Equal(2, statements.GetValueOrDefault("UPDATE jobs")); // the repeat finds every job completed
        Assert.Equal(2, statements.GetValueOrDefault("INSERT job_attempts"));
        await using var connection = await _host.Database.OpenConnectionAsync();
        foreach (var (job, completed) in jobs.Zip(completions))
        {
            var view = await ViewAsync(job);
            Assert.Equal("completed", view.Status);
            Assert.Equal(completed.Outputs["c"].Value, Assert.Single(view.Outputs!).Value);
            var rows = (await connection.QueryAsync<(string AttemptId, string Status, string Signature, string PublicKey, bool SpotCheck, int Index, string Reason)>(
                "select attempt_id, status, signature, public_key, spot_check, accepted_index, reason from job_attempts where job_id = @id order by accepted_index",
                new { id = job.Value })).ToList();
            Assert.Equal(completed.Accepted!.Select((a, i) => (a.AttemptId.Value, "accepted", a.Signature!, a.PublicKey!, a.SpotCheck, i, JobReasons.Verified)), rows);
        }
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_bundle_with_many_changes_of_the_same_jobs_ends_where_the_changes_one_message_at_a_time_end()
    {
        const int seed = 20261206;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        string[] statuses = ["queued", "assigned", "running", "verifying", "completed", "failed", "cancelled", "queued", "running"];
        string?[] reasons = [null, JobReasons.WorkerLost, JobReasons.InputInvalid, JobReasons.CancelledByClient, JobReasons.LeaseExpired];
        var workers = new[] { WorkerId.New(), WorkerId.New() };
        var start = DateTimeOffset.UtcNow;
        // Per job: its changes as (status, attempt index or -1, seconds after start, version, reason, attempt status), some
        // delivered twice, times out of step with versions and sometimes equal.
        var scripts = new List<List<(string Status, int Attempt, int Seconds, int Version, string? Reason, string? AttemptStatus)>>();
        for (var j = 0; j < 30; j++)
        {
            var script = new List<(string, int, int, int, string?, string?)>();
            var count = random.Next(1, 8);
            for (var c = 0; c < count; c++)
            {
                var change = (statuses[random.Next(statuses.Length)], random.Next(-1, 3), random.Next(0, 6), c + 1, reasons[random.Next(reasons.Length)],
                    random.Next(4) == 0 ? "failed" : null);
                script.Add(change);
                if (random.Next(5) == 0)
                    script.Add(change); // a redelivery
            }
            scripts.Add(script);
        }

        // The same changes for two copies of each job (attempt ids are unique, so each copy has its own): one copy gets
        // them all in one bundle, the other one change at a time in the order the batch applies them.
        async Task<(List<JobId> Jobs, List<AttemptId[]> Attempts, List<JobStatusChanged> Changes)> CopyAsync()
        {
            var jobs = new List<JobId>();
            var attempts = new List<AttemptId[]>();
            var changes = new List<JobStatusChanged>();
            foreach (var script in scripts)
            {
                // Submitted before every change, at the same time for both copies: which changes apply must not depend
                // on how long the inserts take.
                var job = await InsertPendingJobAsync(start.AddMinutes(-1));
                var ids = new[] { AttemptId.New(), AttemptId.New(), AttemptId.New() };
                jobs.Add(job);
                attempts.Add(ids);
                changes.AddRange(script.Select(c => new JobStatusChanged
                {
                    JobId = job,
                    Status = c.Status,
                    WorkerId = c.Attempt < 0 ? null : workers[c.Attempt % 2],
                    AttemptId = c.Attempt < 0 ? null : ids[c.Attempt],
                    AttemptStatus = c.AttemptStatus,
                    Reason = c.Reason,
                    Detail = c.Reason is null ? null : $"detail {c.Version}",
                    AttemptReason = c.AttemptStatus is null ? null : JobReasons.WorkerError,
                    AttemptDetail = c.AttemptStatus is null ? null : $"attempt detail {c.Version}",
                    Version = c.Version,
                    OccurredAt = start.AddSeconds(c.Seconds),
                }));
            }
            return (jobs, attempts, changes);
        }
        var bundled = await CopyAsync();
        var oneByOne = await CopyAsync();

        await _host.PublishHandledAsync(Bundle.Of([.. bundled.Changes]));
        // One change of each job per message: its first changes together, then its second ones, and so on (the jobs do
        // not share rows, so only the order of each job's own changes matters).
        var steps = oneByOne.Changes.OrderBy(m => m.JobId.Value, StringComparer.Ordinal).ThenBy(m => m.Version)
            .GroupBy(m => m.JobId).SelectMany(g => g.Select((m, step) => (m, step))).GroupBy(x => x.step).OrderBy(g => g.Key);
        foreach (var step in steps)
            await _host.PublishHandledAsync(Bundle.Of([.. step.Select(x => x.m)]));

        for (var j = 0; j < scripts.Count; j++)
        {
            var expected = await RowsAsync(oneByOne.Jobs[j], oneByOne.Attempts[j]);
            var actual = await RowsAsync(bundled.Jobs[j], bundled.Attempts[j]);
            Assert.True(expected == actual, $"job {j} ({string.Join(", ", scripts[j])}):\none by one: {expected}\nbundled:    {actual}");
        }
        _host.AssertNoConsumerFaulted();
    }

    /// <summary>A job's rows in the view, its log and its attempts, with its own ids replaced by their places, as one text.</summary>
    private async Task<string> RowsAsync(JobId job, AttemptId[] attempts)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        string Placed(string row)
        {
            row = row.Replace(job.Value, "job", StringComparison.Ordinal);
            for (var i = 0; i < attempts.Length; i++)
                row = row.Replace(attempts[i].Value, $"attempt{i}", StringComparison.Ordinal);
            return row;
        }
        var view = await connection.QuerySingleAsync<string>(
            "select concat_ws(' | ', status, status_rank, updated_at, error_reason, error_detail, completed_at, outputs::text) from jobs where id = @id",
            new { id = job.Value });
        var attemptRows = (await connection.QueryAsync<string>(
            "select concat_ws(' | ', attempt_id, worker_id, status, reason, detail, signature, updated_at) from job_attempts where job_id = @id",
            new { id = job.Value })).Select(Placed).Order(StringComparer.Ordinal);
        var events = (await connection.QueryAsync<string>(
            "select concat_ws(' | ', version, status, attempt_id, worker_id, attempt_status, reason, detail, occurred_at) from job_events where job_id = @id order by version",
            new { id = job.Value })).Select(Placed);
        return $"{Placed(view)}\n{string.Join("; ", attemptRows)}\n{string.Join("; ", events)}";
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
