using Dapper;
using MassTransit.Testing;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Jobs;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Jobs;

/// <summary>
/// Input claims (input_invalid, input_missing, input_corrupt) in a network of one operator, where no second operator's
/// worker can confirm them: the scheduler reads the job's inputs from (a stand-in for) storage and runs the worker's own
/// validation. The job fails on its inputs only when that check agrees; a claim it contradicts costs the claimant and
/// the job goes back to the queue.
/// </summary>
public sealed class OneOperatorInputClaimsTests() : SchedulerHarnessTest("scheduler-input-check")
{
    private Task FailAsync(AssignJob assign, string reason, string detail) => Harness.Bus.Publish(TestWorkerKeys.Signed(new AttemptFailed
    {
        JobId = assign.JobId,
        AttemptId = assign.AttemptId,
        WorkerId = assign.WorkerId,
        Reason = reason,
        Detail = detail,
        OccurredAt = DateTimeOffset.UtcNow,
    }));

    private Task<double> ReputationAsync(WorkerOnline worker) => QueryAsync<double>("select reputation from workers where id = @id", new { id = worker.WorkerId.Value });

    private async Task<List<(string WorkerId, string Status, string Reason)>> AttemptsAsync(JobId job)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        return [.. await connection.QueryAsync<(string, string, string)>(
            "select worker_id, status, coalesce(reason, '') from attempts where job_id = @id order by assigned_at, id", new { id = job.Value })];
    }

    private async Task<JobFailed> FailedAsync(JobId job) =>
        (await Harness.Published.SelectAsync<JobFailed>(m => m.Context.Message.JobId == job).First()).Context.Message;

    [Theory]
    [InlineData("input_invalid")]
    [InlineData("input_missing")]
    [InlineData("input_corrupt")]
    public async Task A_false_input_claim_in_a_one_operator_network_costs_the_claimant_and_the_job_completes_on_its_other_worker(string reason)
    {
        await StartAsync();
        var claimant = await WorkerAsync(gflops: 100);
        var sibling = await WorkerAsync(gflops: 50, @operator: claimant.OperatorAccountId);
        var job = await SubmitAsync(inputs: VectorInputs());
        var first = await AssignedAsync(job.JobId);
        Assert.Equal(claimant.WorkerId, first.WorkerId);

        await FailAsync(first, reason, "a is not usable");

        // Not failed on the one node's word: the network read the inputs, found them fit, and queued the job again;
        // the faster claimant is passed over for its operator's other worker.
        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(sibling.WorkerId, second.WorkerId);
        Assert.Equal(0, await _host.OutboxCountAsync<JobFailed>(job.JobId.Value));
        Assert.Equal((claimant.WorkerId.Value, "failed", JobReasons.InputClaimDisproved), (await AttemptsAsync(job.JobId))[0]);
        Assert.Equal(0.5, await ReputationAsync(claimant), 6);
        Assert.Equal(0, await QueryAsync<int>("select streak from worker_trust where worker_id = @id", new { id = claimant.WorkerId.Value }));
        Assert.Equal(1, await QueryAsync<long>("select mismatches from worker_trust where worker_id = @id", new { id = claimant.WorkerId.Value }));

        await ReportAsync(second, Output(6, 8, 10, 12));
        Assert.Equal(second.AttemptId, (await CompletedAsync(job.JobId)).AttemptId);
        // Paid once for the claim, not again when the job completes.
        Assert.Equal(0.5, await ReputationAsync(claimant), 6);
        Assert.Equal(1.0, await ReputationAsync(sibling), 6);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_false_input_claim_by_the_only_worker_fails_the_job_only_with_exhausted_attempts()
    {
        await StartAsync(o => o.MaxAttempts = 2);
        var only = await WorkerAsync(gflops: 100);
        var job = await SubmitAsync(inputs: VectorInputs());

        await FailAsync(await AssignedAsync(job.JobId), "input_missing", "a is not pinned");
        // No other worker: the job may go back to the claimant within its attempts.
        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(only.WorkerId, second.WorkerId);
        await FailAsync(second, "input_missing", "a is not pinned");

        var failed = await FailedAsync(job.JobId);
        Assert.Equal(JobReasons.AttemptsExhausted, failed.Reason);
        Assert.Contains(JobReasons.InputClaimDisproved, failed.Detail, StringComparison.Ordinal);
        Assert.Equal(
            [(only.WorkerId.Value, "failed", JobReasons.InputClaimDisproved), (only.WorkerId.Value, "failed", JobReasons.InputClaimDisproved)],
            await AttemptsAsync(job.JobId));
        Assert.Equal(0.25, await ReputationAsync(only), 6);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task An_input_lost_from_storage_fails_the_job_with_input_missing_when_the_networks_own_check_agrees()
    {
        await StartAsync();
        var claimant = await WorkerAsync(gflops: 100);
        await WorkerAsync(gflops: 50, @operator: claimant.OperatorAccountId);
        var inputs = VectorInputs();
        var job = await SubmitAsync(inputs: inputs);
        var first = await AssignedAsync(job.JobId);
        _storage.Remove(inputs["b"]);

        await FailAsync(first, "input_missing", "b is not pinned");

        var failed = await FailedAsync(job.JobId);
        Assert.Equal(JobReasons.InputMissing, failed.Reason);
        Assert.Contains($"input 'b' ({inputs["b"]}) is not pinned", failed.Detail, StringComparison.Ordinal);
        Assert.Equal([(claimant.WorkerId.Value, "failed", JobReasons.InputMissing)], await AttemptsAsync(job.JobId));
        Assert.Equal(1.0, await ReputationAsync(claimant), 6);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task An_input_truncated_after_its_header_fails_the_job_with_input_invalid_when_the_networks_own_check_agrees()
    {
        await StartAsync();
        var claimant = await WorkerAsync(gflops: 100);
        await WorkerAsync(gflops: 50, @operator: claimant.OperatorAccountId);
        var inputs = VectorInputs();
        // A header the gateway accepts at submit; the data stops 8 bytes short, which only a reader of the whole blob sees.
        inputs["a"] = _storage.Put(Npy.ToBytes(NpyArray.FromFloat32([1, 2, 3, 4], 4))[..^8]);
        var job = await SubmitAsync(inputs: inputs);

        await FailAsync(await AssignedAsync(job.JobId), "input_invalid", "a is truncated");

        var failed = await FailedAsync(job.JobId);
        Assert.Equal(JobReasons.InputInvalid, failed.Reason);
        Assert.Contains("input 'a' is not a valid .npy tensor: its data is truncated", failed.Detail, StringComparison.Ordinal);
        Assert.Equal(1.0, await ReputationAsync(claimant), 6);
        _host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_claim_the_network_cannot_check_while_storage_is_down_sends_the_job_to_another_worker_and_costs_nobody()
    {
        await StartAsync();
        var claimant = await WorkerAsync(gflops: 100);
        var sibling = await WorkerAsync(gflops: 50, @operator: claimant.OperatorAccountId);
        var job = await SubmitAsync(inputs: VectorInputs());
        var first = await AssignedAsync(job.JobId);
        _storage.Down = true;

        await FailAsync(first, "input_invalid", "a is not a tensor");

        var second = await AssignedAsync(job.JobId, nth: 2);
        Assert.Equal(sibling.WorkerId, second.WorkerId);
        Assert.Equal(0, await _host.OutboxCountAsync<JobFailed>(job.JobId.Value));
        Assert.Equal((claimant.WorkerId.Value, "failed", JobReasons.InputClaimUnchecked), (await AttemptsAsync(job.JobId))[0]);
        Assert.Equal(1.0, await ReputationAsync(claimant), 6);
        _host.AssertNoConsumerFaulted();
    }
}

/// <summary>The network's check of a kernel's value rule (train-logreg's labels), read as a stream in pieces of any size.</summary>
public sealed class InputCheckValueTests
{
    private static async Task<InputCheck.Finding> CheckAsync(float[] labels, int chunk)
    {
        var storage = new StandInStorage { Chunk = chunk };
        var x = storage.Put(Npy.ToBytes(NpyArray.FromFloat32(new float[labels.Length * 2], labels.Length, 2)));
        var y = storage.Put(Npy.ToBytes(NpyArray.FromFloat32(labels, labels.Length)));
        using var http = new HttpClient(storage.Handler()) { BaseAddress = new Uri("http://storage.invalid") };
        var spec = new JobSpec { Kernel = KernelCatalog.TrainLogReg, Inputs = new Dictionary<string, Cid> { ["x"] = x, ["y"] = y } };
        return await new InputCheck(http).CheckAsync(spec, hashEveryInput: true, CancellationToken.None);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(65_536)]
    public async Task A_label_other_than_0_or_1_anywhere_in_y_is_input_invalid_and_labels_of_0_and_1_fit(int chunk)
    {
        // Fixed seed, printed in the failure message: where the bad label sits.
        var random = new Random(1515);
        var labels = Enumerable.Range(0, 40_000).Select(_ => (float)random.Next(2)).ToArray();
        Assert.Null((await CheckAsync(labels, chunk)).Reason);

        var at = random.Next(labels.Length);
        labels[at] = 2;
        var finding = await CheckAsync(labels, chunk);
        Assert.True(finding.Reason == JobReasons.InputInvalid, $"seed 1515, bad label at {at}: {finding.Reason} {finding.Detail}");
        Assert.Equal($"train-logreg labels y must be 0 or 1; y[{at}] is 2", finding.Detail);
    }
}
