using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

/// <summary>
/// Runs one attempt: fetch and verify inputs, check them against the catalogue, compute, pin the outputs,
/// report. Problems with the inputs fail the attempt with a reason; infrastructure errors throw so the
/// message is retried. Redelivery recomputes the same bytes and so the same output CIDs.
/// </summary>
public sealed class AssignJobConsumer(GatewayClient gateway, CpuKernels kernels, NodeStatus status, NodeIdentity identity, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<AssignJobConsumer> logger)
    : IConsumer<AssignJob>
{
    public async Task Consume(ConsumeContext<AssignJob> context)
    {
        var job = context.Message;
        var ct = context.CancellationToken;
        if (job.WorkerId != identity.WorkerId)
            return;

        var attempt = status.Begin(job.AttemptId, ct);
        try
        {
            await context.Publish(new AttemptStarted { JobId = job.JobId, AttemptId = job.AttemptId, WorkerId = identity.WorkerId, OccurredAt = clock.GetUtcNow() }, ct);
            Outcome outcome;
            try
            {
                outcome = await RunAsync(job, attempt);
            }
            catch (OperationCanceledException) when (status.WasCancelled(job.AttemptId))
            {
                logger.LogInformation("Attempt {AttemptId} of {JobId} stopped: the job was cancelled", job.AttemptId, job.JobId);
                return;
            }
            catch (Exception ex) when (ex is not (OperationCanceledException or HttpRequestException))
            {
                // A fault of this node, not of the job: the scheduler gives the job to another worker.
                logger.LogError(ex, "Attempt {AttemptId} of {JobId} failed on this node", job.AttemptId, job.JobId);
                outcome = Outcome.Fail("worker_error", $"the worker failed: {ex.GetType().Name}");
            }
            if (outcome.Failure is var (reason, detail))
            {
                logger.LogInformation("Attempt {AttemptId} of {JobId} failed: {Reason}: {Detail}", job.AttemptId, job.JobId, reason, detail);
                await context.Publish(new AttemptFailed
                {
                    JobId = job.JobId,
                    AttemptId = job.AttemptId,
                    WorkerId = identity.WorkerId,
                    Reason = reason,
                    Detail = detail,
                    OccurredAt = clock.GetUtcNow(),
                }, ct);
                return;
            }
            await context.Publish(new AttemptCompleted
            {
                JobId = job.JobId,
                AttemptId = job.AttemptId,
                WorkerId = identity.WorkerId,
                Outputs = outcome.Outputs!,
                Metrics = outcome.Metrics!,
                OccurredAt = clock.GetUtcNow(),
            }, ct);
            logger.LogInformation("Attempt {AttemptId} of {JobId} completed in {DurationMs:F1} ms", job.AttemptId, job.JobId, outcome.Metrics!.DurationMs);
        }
        finally
        {
            status.End(job.AttemptId);
        }
    }

    private sealed record Outcome(IReadOnlyDictionary<string, Cid>? Outputs, AttemptMetrics? Metrics, (string Reason, string Detail)? Failure)
    {
        public static Outcome Fail(string reason, string detail) => new(null, null, (reason, detail));
    }

    private async Task<Outcome> RunAsync(AssignJob job, CancellationToken ct)
    {
        var spec = job.Spec;
        if (KernelCatalog.CheckNames(spec.Kernel, spec.Inputs.Keys.ToList(), spec.Params) is { } nameError)
            return Outcome.Fail("input_invalid", nameError);

        var inputs = new Dictionary<string, NpyArray>();
        foreach (var (name, cid) in spec.Inputs)
        {
            var bytes = await gateway.GetBlobAsync(cid, ct);
            if (bytes is null)
                return Outcome.Fail("input_missing", $"input '{name}' ({cid}) is not pinned");
            if (Cid.Compute(bytes) != cid)
                return Outcome.Fail("input_corrupt", $"input '{name}' did not match its CID {cid}");
            try
            {
                inputs[name] = Npy.Read(bytes);
            }
            catch (NpyFormatException ex)
            {
                return Outcome.Fail("input_invalid", $"input '{name}' is not a valid .npy tensor: {ex.Message}");
            }
        }

        var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
        var plan = KernelCatalog.Plan(spec.Kernel, infos, spec.Params, out var planError);
        if (planError is not null)
            return Outcome.Fail("input_invalid", planError);

        var watch = Stopwatch.StartNew();
        var results = kernels.Run(spec.Kernel, inputs, ct);
        watch.Stop();

        var outputs = new Dictionary<string, Cid>();
        foreach (var (name, tensor) in results)
            outputs[name] = await gateway.PutBlobAsync(Npy.ToBytes(tensor), ct);

        var seconds = watch.Elapsed.TotalSeconds;
        return new Outcome(outputs, new AttemptMetrics
        {
            DurationMs = watch.Elapsed.TotalMilliseconds,
            Gflop = plan.Gflop,
            Device = "cpu/simd",
            // Estimated from the node's nominal draw until the worker measures power (RAPL, NVML).
            Joules = seconds * 15.0 * Math.Min(Environment.ProcessorCount, options.Value.Slots),
        }, null);
    }
}
