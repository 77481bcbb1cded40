using System.Security.Cryptography;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// Signed results, replicas from different operators, tie-breaks, penalties, spot checks and stakes: the
/// scheduler's consumers and dispatcher on a real Postgres. Outputs whose CIDs differ are read from a
/// stand-in for the storage service that serves the test's tensors.
/// </summary>
public sealed class VerificationTests : SchedulerHarnessTest
{
    public VerificationTests()
        : base("scheduler-verification")
    {
    }

    [Fact]
    public async Task A_result_signed_by_another_key_is_rejected_and_the_job_runs_elsewhere()
    {
        await StartAsync();
        var first = await WorkerAsync(gflops: 100);
        var second = await WorkerAsync(gflops: 1);
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);
        Assert.Equal(first.WorkerId, assign.WorkerId);

        using var impostor = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var forged = Result(assign, Output(1, 2, 3));
        await Harness.Bus.Publish(forged with { Signature = ResultSignature.Sign(impostor, forged.JobId, forged.AttemptId, forged.Outputs) });

        var retry = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(second.WorkerId, retry.WorkerId);
        Assert.Equal("signature_invalid", await QueryAsync<string>("select reason from attempts where id = @id", new { id = assign.AttemptId.Value }));
        Assert.Equal(0, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));

        await ReportAsync(retry, Output(1, 2, 3));
        var done = await CompletedAsync(job.JobId);
        Assert.Equal(retry.AttemptId, done.AttemptId);
        Assert.Equal(1, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
        // A forged result counts as a failed verification: the worker's trust starts again from nothing.
        Assert.Equal(1, await QueryAsync<long>("select mismatches from worker_trust where worker_id = @id", new { id = first.WorkerId.Value }));
        Assert.Equal(1, await QueryAsync<int>("select streak from worker_trust where worker_id = @id", new { id = second.WorkerId.Value }));
    }

    [Fact]
    public async Task An_unsigned_result_is_rejected()
    {
        await StartAsync();
        await WorkerAsync(gflops: 100);
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);

        await Harness.Bus.Publish(Result(assign, Output(1, 2, 3)));

        Assert.Equal("failed", await Eventually.UntilAsync(
            () => QueryAsync<string>("select status from attempts where id = @id", new { id = assign.AttemptId.Value }),
            s => s == "failed", TimeSpan.FromSeconds(10), "the unsigned attempt failing"));
        Assert.Equal("signature_invalid", await QueryAsync<string>("select reason from attempts where id = @id", new { id = assign.AttemptId.Value }));
        Assert.Equal(0, await _host.OutboxCountAsync<JobCompleted>(job.JobId.Value));
    }

    [Fact]
    public async Task A_worker_id_cannot_be_taken_over_with_another_key()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var takeover = TestWorkerKeys.SignedWith(other, worker with { Region = "elsewhere", OccurredAt = DateTimeOffset.UtcNow });

        await Harness.Bus.Publish(takeover);
        await _host.HandledAsync<WorkerOnline>(m => m.PublicKey == takeover.PublicKey);

        Assert.Equal(worker.PublicKey, await QueryAsync<string>("select public_key from workers where id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal("local", await QueryAsync<string>("select region from workers where id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal(1, await QueryAsync<long>("select count from rejected_node_messages where reason = 'key_mismatch'", new { }));
    }

    [Fact]
    public async Task A_worker_registers_only_a_key_it_proves_it_holds()
    {
        await StartAsync();
        var signed = TestWorkerKeys.Registered(new WorkerOnline
        {
            WorkerId = WorkerId.New(),
            OperatorAccountId = AccountId.New(),
            Region = "local",
            Slots = 1,
            Kernels = ["vector-add"],
            Devices = [],
            GflopsPerKernel = new Dictionary<string, double> { ["vector-add"] = 1 },
            PowerWatts = 10,
            OccurredAt = DateTimeOffset.UtcNow,
        });
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // Someone announces another's public key (unsigned, or signed with their own key), to have results it
        // cannot sign rejected under that id, or to squat the id first.
        var unsigned = signed with { Signature = null };
        var notTheirs = signed with { Signature = WorkerMessageSignature.Sign(other, WorkerMessageSignature.Payload(signed)) };
        await _host.RegisterAsync(signed); // its operator registered it: the announcements are still checked

        foreach (var announcement in new[] { unsigned, notTheirs })
        {
            await Harness.Bus.Publish(announcement);
            await _host.HandledAsync<WorkerOnline>(m => m.WorkerId == announcement.WorkerId && m.Signature == announcement.Signature);
        }
        Assert.Equal(0, await QueryAsync<long>("select count(*) from workers where id = @id", new { id = signed.WorkerId.Value }));

        await Harness.Bus.Publish(signed);
        Assert.Equal(1, await Eventually.UntilAsync(
            () => QueryAsync<long>("select count(*) from workers where id = @id", new { id = signed.WorkerId.Value }),
            n => n == 1, TimeSpan.FromSeconds(10), "the signed announcement registering the worker"));
    }

    [Fact]
    public async Task Replicas_run_on_different_operators_and_a_disagreement_is_broken_and_penalized()
    {
        await StartAsync();
        var cheatersOperator = AccountId.New();
        var cheater = await WorkerAsync(gflops: 100, cheatersOperator);
        await WorkerAsync(gflops: 90, cheatersOperator); // the same operator's second worker may not verify the first
        var honest = await WorkerAsync(gflops: 50);
        var tieBreaker = await WorkerAsync(gflops: 10);
        var job = await SubmitAsync(replicas: 2);

        var first = await AssignedAsync(job.JobId);
        Assert.Equal(cheater.WorkerId, first.WorkerId);
        await ReportAsync(first, Output(2, 3, 4));

        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(honest.WorkerId, second.WorkerId);
        Assert.True(await Harness.AnyPublished<JobStatusChanged>(m => m.JobId == job.JobId && m.Status == "verifying"));
        await ReportAsync(second, Output(1, 2, 3));

        // The tie-breaker adds in another order: a different CID, equal within rounding.
        var third = await AssignedAsync(job.JobId, nth: 3);
        Assert.Equal(tieBreaker.WorkerId, third.WorkerId);
        await ReportAsync(third, Output(1, 2.0000002f, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(second.AttemptId, done.AttemptId);
        Assert.Equal([second.AttemptId, third.AttemptId], done.Accepted!.Select(a => a.AttemptId));
        Assert.All(done.Accepted!, a => Assert.False(a.SpotCheck));
        Assert.Equal(Output(1, 2, 3), done.Outputs);

        var penalty = (await Harness.Published.SelectAsync<WorkerPenalized>(m => m.Context.Message.JobId == job.JobId).First()).Context.Message;
        Assert.Equal(first.AttemptId, penalty.AttemptId);
        Assert.Equal(cheatersOperator, penalty.OperatorAccountId);
        Assert.Equal(1, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
        Assert.Equal("rejected", await QueryAsync<string>("select status from attempts where id = @id", new { id = first.AttemptId.Value }));
        Assert.Equal(0.5, await QueryAsync<double>("select reputation from workers where id = @id", new { id = cheater.WorkerId.Value }));
    }

    [Fact]
    public async Task Agreeing_replicas_complete_the_job_without_penalties()
    {
        await StartAsync();
        await WorkerAsync(gflops: 100);
        await WorkerAsync(gflops: 50);
        var job = await SubmitAsync(replicas: 2);

        await ReportAsync(await AssignedAsync(job.JobId), Output(1, 2, 3));
        await ReportAsync(await AssignedAsync(job.JobId, nth: 2), Output(1, 2, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(2, done.Accepted!.Count);
        Assert.Equal(0, await _host.OutboxCountAsync<WorkerPenalized>(job.JobId.Value));
    }

    [Fact]
    public async Task A_spot_checked_job_is_verified_by_another_operator_at_the_networks_expense()
    {
        await StartAsync(o => o.SpotChecks = true);
        var first = await WorkerAsync(gflops: 100);
        var checker = await WorkerAsync(gflops: 50);
        var job = await SubmitAsync(replicas: 1);

        await ReportAsync(await AssignedAsync(job.JobId), Output(1, 2, 3));
        var check = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(checker.WorkerId, check.WorkerId);
        await ReportAsync(check, Output(1, 2, 3));

        var done = await CompletedAsync(job.JobId);
        Assert.Equal(first.WorkerId, done.WorkerId);
        Assert.Equal([false, true], done.Accepted!.Select(a => a.SpotCheck));
    }

    [Fact]
    public async Task Workers_get_work_only_once_their_operator_has_staked_the_minimum()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 10, stake: 5);
        var job = await SubmitAsync();
        await Eventually.UntilAsync(() => QueryAsync<string>("select status from jobs where id = @id", new { id = job.JobId.Value }),
            s => s == "queued", TimeSpan.FromSeconds(10), "the job queued");

        var dispatcher = _host.Services.GetRequiredService<Dispatcher>();
        Assert.Equal(0, await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.Equal("queued", await QueryAsync<string>("select status from jobs where id = @id", new { id = job.JobId.Value }));

        await StakeAsync(worker.OperatorAccountId, 10, version: 3);
        Assert.Equal(worker.WorkerId, (await AssignedAsync(job.JobId)).WorkerId);

        // An older stake message arriving late changes nothing.
        await StakeAsync(worker.OperatorAccountId, 0, version: 2);
        Assert.Equal(10m, await QueryAsync<decimal>("select staked from operator_stakes where operator_account_id = @id", new { id = worker.OperatorAccountId.Value }));
    }

    /// <summary>A job id whose spot-check draw at <paramref name="probability"/> comes out as <paramref name="picked"/>.</summary>
    private JobId JobIdDrawn(double probability, bool picked)
    {
        while (true)
        {
            var id = JobId.New();
            if (_host.Services.GetRequiredService<SpotCheckDraw>().Picks(id, probability) == picked)
                return id;
        }
    }

    /// <summary>Spot checks on: every result checked below <paramref name="threshold"/>, then one in streak with no floor.</summary>
    private Task StartWithTrustThresholdAsync(int threshold) => StartAsync(o =>
    {
        o.SpotChecks = true;
        o.TrustThreshold = threshold;
        o.MinimumCheckProbability = 0;
    });

    [Fact]
    public async Task A_new_worker_has_every_result_checked_until_its_streak_reaches_the_threshold_then_one_in_streak()
    {
        await StartWithTrustThresholdAsync(3);
        var worker = await WorkerAsync(gflops: 100);
        var checker = await WorkerAsync(gflops: 50);

        for (var streak = 0; streak < 3; streak++)
        {
            var job = await SubmitAsync(id: JobIdDrawn(probability: 1.0 / 3, picked: false));
            var first = await AssignedAsync(job.JobId);
            Assert.Equal(worker.WorkerId, first.WorkerId);
            await ReportAsync(first, Output(1, 2, 3));
            var check = await AssignedAsync(job.JobId, nth: 2);
            Assert.Equal(checker.WorkerId, check.WorkerId);
            await ReportAsync(check, Output(1, 2, 3));
            Assert.Equal([false, true], (await CompletedAsync(job.JobId)).Accepted!.Select(a => a.SpotCheck));
        }

        // Streak 3: checked with probability 1/3. A job the draw passes over completes on its one result...
        var trusted = await SubmitAsync(id: JobIdDrawn(probability: 1.0 / 3, picked: false));
        var only = await AssignedAsync(trusted.JobId);
        await ReportAsync(only, Output(1, 2, 3));
        Assert.Single((await CompletedAsync(trusted.JobId)).Accepted!);

        // ...and at streak 4 a job the draw picks (probability 1/4) is checked.
        var picked = await SubmitAsync(id: JobIdDrawn(probability: 1.0 / 4, picked: true));
        await ReportAsync(await AssignedAsync(picked.JobId), Output(1, 2, 3));
        Assert.Equal(checker.WorkerId, (await AssignedAsync(picked.JobId, nth: 2)).WorkerId);

        var trust = Assert.Single((await PlacementAsync(worker.WorkerId)).Trust);
        Assert.Equal(("vector-add", 4, 0.25, 3L), (trust.Kernel, trust.Streak, trust.CheckProbability, trust.Checked));
    }

    [Fact]
    public async Task A_mismatch_resets_a_long_streak_and_every_result_is_checked_again()
    {
        await StartWithTrustThresholdAsync(3);
        var cheater = await WorkerAsync(gflops: 100);
        var checker = await WorkerAsync(gflops: 50);
        var tieBreaker = await WorkerAsync(gflops: 10);
        await ExecuteAsync("insert into worker_trust (worker_id, kernel, streak, accepted, updated_at) values (@id, 'vector-add', 50, 50, now())",
            new { id = cheater.WorkerId.Value });

        // One in fifty of a trusted worker's results is checked; this job is one of them, and its result is wrong.
        var job = await SubmitAsync(id: JobIdDrawn(probability: 1.0 / 50, picked: true));
        await ReportAsync(await AssignedAsync(job.JobId), Output(2, 3, 4));
        var check = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(checker.WorkerId, check.WorkerId);
        await ReportAsync(check, Output(1, 2, 3));
        var tie = await AssignedAsync(job.JobId, nth: 3);
        Assert.Equal(tieBreaker.WorkerId, tie.WorkerId);
        await ReportAsync(tie, Output(1, 2, 3));
        Assert.Equal(Output(1, 2, 3), (await CompletedAsync(job.JobId)).Outputs);

        var trust = Assert.Single((await PlacementAsync(cheater.WorkerId)).Trust);
        Assert.Equal((0, 1.0, 1L), (trust.Streak, trust.CheckProbability, trust.Mismatches));

        // The next result is checked whatever the draw.
        var next = await SubmitAsync(id: JobIdDrawn(probability: 1.0 / 50, picked: false));
        var again = await AssignedAsync(next.JobId);
        Assert.Equal(cheater.WorkerId, again.WorkerId);
        await ReportAsync(again, Output(1, 2, 3));
        Assert.Equal(checker.WorkerId, (await AssignedAsync(next.JobId, nth: 2)).WorkerId);
    }
}
