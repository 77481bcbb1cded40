using Dapper;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Jobs;

/// <summary>
/// Liveness and claims on the network's own terms, on a real Postgres: heartbeat age by the scheduler's clock,
/// attempts that run past their own deadline, GFLOP/s and slot claims checked against what the scheduler
/// measures, and input failures that need a second operator's word.
/// </summary>
public sealed class LivenessClaimsTests() : SchedulerHarnessTest("scheduler-liveness"), IAsyncLifetime
{
    private readonly CancellationTokenSource _stop = new();

    // The test beats every 100 ms; a worker is offline after three intervals (3 s) and a lease lapses after 10 s, so a
    // busy two-core machine pausing the beats for a second or two changes nothing a test here looks at.
    private static void Beating(SchedulerOptions o)
    {
        o.HeartbeatInterval = TimeSpan.FromSeconds(1);
        o.LeaseDuration = TimeSpan.FromSeconds(5);
        o.GracePeriod = TimeSpan.FromSeconds(5);
    }

    /// <summary>
    /// Beats for the worker every 100 ms, its clock off by <paramref name="skew"/>, listing every attempt it holds,
    /// until the test ends or <paramref name="silence"/> is cancelled.
    /// </summary>
    private void Beat(WorkerOnline worker, TimeSpan skew, CancellationToken silence = default)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, silence);
        _ = Task.Run(async () =>
        {
            using var _ = stop;
            using var beat = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            while (await beat.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
            {
                IReadOnlyList<AttemptId> holding;
                await using (var connection = await _host.Database.OpenConnectionAsync(stop.Token))
                {
                    holding = [.. (await connection.QueryAsync<string>("select attempt_id from jobs where worker_id = @id and status in ('assigned', 'running')",
                        new { id = worker.WorkerId.Value })).Select(AttemptId.From)];
                }
                await Harness.Bus.Publish(TestWorkerKeys.Signed(new WorkerHeartbeat
                {
                    WorkerId = worker.WorkerId,
                    ActiveAttempts = holding.Count,
                    Attempts = holding,
                    OccurredAt = DateTimeOffset.UtcNow + skew,
                }), stop.Token);
            }
        });
    }

    private Task<bool> OnlineAsync(WorkerOnline worker) => QueryAsync<bool>("select online from workers where id = @id", new { id = worker.WorkerId.Value });

    private Task FailAsync(AssignJob assign, string reason, string detail) => Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptFailed
    {
        JobId = assign.JobId,
        AttemptId = assign.AttemptId,
        WorkerId = assign.WorkerId,
        Reason = reason,
        Detail = detail,
        OccurredAt = DateTimeOffset.UtcNow,
    }));

    private void AssertNoConsumerFaulted() => _host.AssertNoConsumerFaulted();

    Task IAsyncLifetime.InitializeAsync() => InitializeAsync();

    // The beats stop before the scheduler does.
    async Task IAsyncLifetime.DisposeAsync()
    {
        await _stop.CancelAsync();
        await DisposeAsync();
        _stop.Dispose();
    }

    [Fact]
    public async Task A_worker_whose_clock_runs_a_day_ahead_goes_offline_after_three_intervals_of_silence()
    {
        await StartAsync(Beating);
        var ahead = TimeSpan.FromDays(1);
        var worker = await WorkerAsync(gflops: 10, shape: w => w with { OccurredAt = DateTimeOffset.UtcNow + ahead });
        using var silence = new CancellationTokenSource();
        Beat(worker, ahead, silence.Token);
        await Eventually.UntilAsync(() => QueryAsync<long>("select count(*) from workers where id = @id and node_clock_at is not null and last_seen_at > now() - interval '1 minute'",
            new { id = worker.WorkerId.Value }), n => n == 1, TimeSpan.FromSeconds(20), "a beat consumed");
        await silence.CancelAsync();

        // Its beats said "tomorrow"; by the scheduler's clock it has been silent, and three intervals are 3 s.
        var silentSince = DateTimeOffset.UtcNow;
        Assert.False(await Eventually.UntilAsync(() => OnlineAsync(worker), online => !online, TimeSpan.FromSeconds(20), "the silent worker going offline"));
        Assert.True(DateTimeOffset.UtcNow - silentSince < TimeSpan.FromSeconds(20));
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_worker_whose_clock_runs_an_hour_behind_stays_online_while_it_beats_and_gets_work()
    {
        await StartAsync(Beating);
        var behind = TimeSpan.FromHours(-1);
        var worker = await WorkerAsync(gflops: 10, shape: w => w with { OccurredAt = DateTimeOffset.UtcNow + behind });
        Beat(worker, behind);

        // Five heartbeat intervals later (an hour behind, every beat would look an hour late) it is still online, and it gets the job.
        var until = DateTimeOffset.UtcNow.AddSeconds(5);
        await Eventually.UntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow), now => now > until, TimeSpan.FromSeconds(15), "five intervals to pass");
        Assert.True(await OnlineAsync(worker));
        var job = await SubmitAsync();
        Assert.Equal(worker.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);
        Assert.True(await OnlineAsync(worker));
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_beat_sent_before_the_workers_offline_but_delivered_after_it_does_not_bring_it_back()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10);
        var goodbye = DateTimeOffset.UtcNow.AddSeconds(1);
        await Harness.Bus.Publish(TestWorkerKeys.Signed(new WorkerOffline { WorkerId = worker.WorkerId, OccurredAt = goodbye }));
        Assert.False(await Eventually.UntilAsync(() => OnlineAsync(worker), online => !online, TimeSpan.FromSeconds(10), "the worker offline"));

        var late = TestWorkerKeys.Signed(new WorkerHeartbeat { WorkerId = worker.WorkerId, ActiveAttempts = 0, Attempts = [], OccurredAt = goodbye.AddMilliseconds(-500) });
        await Harness.Bus.Publish(late);
        await _host.HandledAsync<WorkerHeartbeat>(m => m.Signature == late.Signature);
        Assert.False(await OnlineAsync(worker));

        // Announced again (a new run): online, whatever its clock says.
        await Harness.Bus.Publish(TestWorkerKeys.Registered(worker with { OccurredAt = goodbye.AddMinutes(-5) }));
        Assert.True(await Eventually.UntilAsync(() => OnlineAsync(worker), online => online, TimeSpan.FromSeconds(10), "the worker back online"));
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_worker_that_beats_but_never_finishes_is_overdue_loses_the_job_and_reputation()
    {
        await StartAsync(o =>
        {
            Beating(o);
            o.MinimumAttemptTime = TimeSpan.FromSeconds(1.5);
            o.OverdueReputationFactor = 0.8;
        });
        var stalling = await WorkerAsync(gflops: 100);
        Beat(stalling, TimeSpan.Zero); // lists its attempt in every beat, so its lease never runs out: only the 1.5 s deadline ends it
        var job = await SubmitAsync();
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(stalling.WorkerId, first.WorkerId);
        var honest = await WorkerAsync(gflops: 1);
        Beat(honest, TimeSpan.Zero);

        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(honest.WorkerId, second.WorkerId);
        Assert.Equal("attempt_overdue", await QueryAsync<string>("select reason from attempts where id = @id", new { id = first.AttemptId.Value }));
        Assert.True(await QueryAsync<bool>("select deadline is not null and deadline >= assigned_at + interval '1.5 seconds' from attempts where id = @id",
            new { id = first.AttemptId.Value }));
        Assert.Equal(0.8, await QueryAsync<double>("select reputation from workers where id = @id", new { id = stalling.WorkerId.Value }), 6);
        Assert.True(await Harness.Sent.Any<CancelAttempt>(m => m.Context.Message.AttemptId == first.AttemptId));
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.AttemptId == first.AttemptId && m.Reason == "attempt_overdue"));

        await ReportAsync(second, Output(1, 2, 3));
        Assert.Equal(second.AttemptId, (await CompletedAsync(job.JobId)).AttemptId);
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_worker_claiming_ten_times_its_measured_speed_loses_placement_to_an_honest_faster_one()
    {
        await StartAsync(o =>
        {
            o.ClaimSamples = 3;
            o.ClaimTolerance = 2;
            o.SpeedSampleMinimumTime = TimeSpan.FromSeconds(0.5);
        });
        // Jobs are 1 GFLOP. The liar claims 10 GFLOP/s and takes a second per job (1 GFLOP/s); the honest worker
        // claims 3 and is not measured at all.
        var liar = await WorkerAsync(gflops: 10);
        var honest = await WorkerAsync(gflops: 3);
        for (var i = 0; i < 3; i++)
        {
            var job = await SubmitAsync();
            var assign = await AssignedAsync(job.JobId);
            Assert.Equal(liar.WorkerId, assign.WorkerId);
            // The attempt ran for a second by the scheduler's clock (moved back rather than waited for).
            await ExecuteAsync("update attempts set assigned_at = assigned_at - interval '1 second' where id = @id", new { id = assign.AttemptId.Value });
            await ReportAsync(assign, Output(1, 2, 3));
            await CompletedAsync(job.JobId);
        }
        var rates = await QueryAsync<double[]>("select rates from worker_speed where worker_id = @id", new { id = liar.WorkerId.Value });
        Assert.Equal(3, rates.Length);
        // At most 1 GFLOP/s (a second per GFLOP); lower by however long the messages took on a busy machine.
        Assert.All(rates, rate => Assert.InRange(rate, 0.1, 1.01));

        // GET /v1/workers shows the claim, the measurement and what placement believes.
        var views = await NetworkApi.ListWorkers(_host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), CancellationToken.None);
        var view = views.Value!.Single(w => w.WorkerId == liar.WorkerId.Value);
        Assert.Equal(10, view.GflopsPerKernel["vector-add"]);
        Assert.InRange(view.MeasuredGflopsPerKernel!["vector-add"], 0.1, 1.01);
        Assert.InRange(view.EffectiveGflopsPerKernel!["vector-add"], 0.2, 2.02);
        Assert.Equal(1, view.EffectiveSlots);

        // Believed up to 2 x 1 GFLOP/s now: the honest worker's 3 wins.
        var next = await SubmitAsync();
        Assert.Equal(honest.WorkerId, (await AssignedAsync(next.JobId)).WorkerId);
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_worker_gets_no_more_attempts_than_the_slot_bound_however_many_it_claims()
    {
        await StartAsync(o => o.MaxSlots = 2);
        var greedy = await WorkerAsync(gflops: 10, shape: w => w with { Slots = 1000 });
        var jobs = new List<JobSubmitted>();
        for (var i = 0; i < 3; i++)
            jobs.Add(await SubmitAsync());

        await Eventually.UntilAsync(() => QueryAsync<long>("select count(*) from jobs where worker_id = @id and status = 'assigned'", new { id = greedy.WorkerId.Value }),
            n => n == 2, TimeSpan.FromSeconds(20), "two jobs assigned");
        // The third waits for another worker, slower though it is: the greedy one's two slots are full.
        var waiting = await QueryAsync<string>("select id from jobs where id = any(@ids) and worker_id is null", new { ids = jobs.Select(j => j.JobId.Value).ToArray() });
        var slow = await WorkerAsync(gflops: 1);
        Assert.Equal(slow.WorkerId, (await AssignedAsync(JobId.From(waiting))).WorkerId);
        Assert.Equal(2, await QueryAsync<long>("select count(*) from jobs where worker_id = @id and status = 'assigned'", new { id = greedy.WorkerId.Value }));
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_false_input_claim_sends_the_job_to_another_operator_and_costs_the_claimant_reputation()
    {
        await StartAsync();
        var claimant = await WorkerAsync(gflops: 100);
        var sameOperator = await WorkerAsync(gflops: 50, @operator: claimant.OperatorAccountId);
        var other = await WorkerAsync(gflops: 1);
        var job = await SubmitAsync();
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(claimant.WorkerId, first.WorkerId);

        await FailAsync(first, "input_invalid", "a is not a tensor");

        // Not failed: the next attempt goes to another operator's worker, though one of the claimant's is faster.
        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(other.WorkerId, second.WorkerId);
        Assert.NotEqual(sameOperator.WorkerId, second.WorkerId);
        Assert.Equal(0, await _host.OutboxCountAsync<JobFailed>(job.JobId.Value));

        await ReportAsync(second, Output(1, 2, 3));
        Assert.Equal(second.AttemptId, (await CompletedAsync(job.JobId)).AttemptId);
        Assert.Equal(0.5, await QueryAsync<double>("select reputation from workers where id = @id", new { id = claimant.WorkerId.Value }), 6);
        Assert.Equal(1.0, await QueryAsync<double>("select reputation from workers where id = @id", new { id = other.WorkerId.Value }), 6);
        Assert.Equal(0, await QueryAsync<int>("select streak from worker_trust where worker_id = @id", new { id = claimant.WorkerId.Value }));
        Assert.Equal(1, await QueryAsync<long>("select mismatches from worker_trust where worker_id = @id", new { id = claimant.WorkerId.Value }));
        AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task An_input_claim_confirmed_by_a_second_operators_worker_fails_the_job_with_both_attempts()
    {
        await StartAsync();
        var first = await WorkerAsync(gflops: 100);
        var second = await WorkerAsync(gflops: 1);
        var job = await SubmitAsync();
        var a = await AssignedAsync(job.JobId);
        Assert.Equal(first.WorkerId, a.WorkerId);
        await FailAsync(a, "input_invalid", "a is not a tensor");
        var b = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(second.WorkerId, b.WorkerId);
        await FailAsync(b, "input_invalid", "a is still not a tensor");

        var failed = (await Harness.Published.SelectAsync<JobFailed>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal("input_invalid", failed.Reason);
        Assert.Contains($"confirmed by worker {first.WorkerId}", failed.Detail, StringComparison.Ordinal);
        await using var connection = await _host.Database.OpenConnectionAsync();
        var attempts = (await connection.QueryAsync<(string WorkerId, string Status, string Reason)>(
            "select worker_id, status, reason from attempts where job_id = @id order by assigned_at", new { id = job.JobId.Value })).ToList();
        Assert.Equal([(first.WorkerId.Value, "failed", "input_invalid"), (second.WorkerId.Value, "failed", "input_invalid")], attempts);
        // Nobody's claim was disproved.
        Assert.Equal(1.0, await QueryAsync<double>("select reputation from workers where id = @id", new { id = first.WorkerId.Value }), 6);
        AssertNoConsumerFaulted();
    }
}
