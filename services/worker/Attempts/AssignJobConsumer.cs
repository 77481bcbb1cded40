using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Platform.Worker.Metrics;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

/// <summary>
/// Runs one attempt: fetch and verify inputs, check them against the catalogue, compute, pin the outputs,
/// report. Problems with the inputs fail the attempt with a reason; infrastructure errors throw so the
/// message is retried. Redelivery recomputes the same bytes and so the same output CIDs.
/// </summary>
public sealed class AssignJobConsumer(GatewayClient gateway, InputCache cache, PinnedOutputs pinned, ComputeNode compute, EnergyMeter energy, NodeStatus status, NodeIdentity identity, NodeChannel network, IOptions<WorkerOptions> options, TimeProvider clock, ILogger<AssignJobConsumer> logger)
    : IConsumer<AssignJob>
{
    public async Task Consume(ConsumeContext<AssignJob> context)
    {
        var job = context.Message;
        var ct = context.CancellationToken;
        if (job.WorkerId != identity.WorkerId)
            return;

        var attempt = status.Begin(job.AttemptId, ct);
        using var finished = new CancellationTokenSource();
        try
        {
            // Not awaited until the outcome is sent: each confirm is a disk write of the broker's (a few ms), and the
            // scheduler takes a result that overtakes its start as the proof that the attempt ran. A start that could
            // not be sent still fails the message, which is retried and reports the same outcome again.
            var started = ReportStartAsync(job, finished.Token, ct);
            // However the run ends, a start not reported yet never will be.
            async Task<Outcome> RunUntilFinishedAsync()
            {
                try
                {
                    return await RunAsync(context, attempt);
                }
                finally
                {
                    await finished.CancelAsync();
                }
            }
            Outcome outcome;
            try
            {
                outcome = await RunUntilFinishedAsync();
            }
            catch (OperationCanceledException) when (status.WasCancelled(job.AttemptId))
            {
                logger.LogInformation("Attempt {AttemptId} of {JobId} stopped: the job was cancelled", job.AttemptId, job.JobId);
                NodeMetrics.Ended(job.Spec.Kernel, "cancelled");
                await started.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                return;
            }
            catch (Exception ex) when (StorageUnreachable(ex, ct))
            {
                // GatewayClient already retried for Worker:BlobRetryWindow: failing the attempt now hands the job back
                // at once, instead of the message being retried (each retry waiting out the window again) and dropped.
                logger.LogWarning("Attempt {AttemptId} of {JobId}: storage unreachable through the gateway: {Error}", job.AttemptId, job.JobId, ex.Message);
                outcome = Outcome.Fail(JobReasons.StorageUnreachable,
                    $"blob reads or pins through the gateway kept failing for {JobReasons.Duration(options.Value.BlobRetryWindow)}: {ex.Message}");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A fault of this node, not of the job: the scheduler gives the job to another worker.
                logger.LogError(ex, "Attempt {AttemptId} of {JobId} failed on this node", job.AttemptId, job.JobId);
                outcome = Outcome.Fail("worker_error", $"the worker failed: {ex.GetType().Name}");
            }

            if (outcome.Failure is var (reason, detail))
            {
                logger.LogInformation("Attempt {AttemptId} of {JobId} failed: {Reason}: {Detail}", job.AttemptId, job.JobId, reason, detail);
                NodeMetrics.Ended(job.Spec.Kernel, "failed");
                await network.SendAsync(identity.Signed(new AttemptFailed
                {
                    JobId = job.JobId,
                    AttemptId = job.AttemptId,
                    WorkerId = identity.WorkerId,
                    Reason = reason,
                    Detail = detail,
                    OccurredAt = clock.GetUtcNow(),
                }), ct);
                await started;
                return;
            }
            await network.SendAsync(new AttemptCompleted
            {
                JobId = job.JobId,
                AttemptId = job.AttemptId,
                WorkerId = identity.WorkerId,
                Outputs = outcome.Outputs!,
                Metrics = outcome.Metrics!,
                Signature = identity.Sign(job.JobId, job.AttemptId, outcome.Outputs!),
                OccurredAt = clock.GetUtcNow(),
            }, ct);
            await started;
            NodeMetrics.Completed(job.Spec.Kernel, outcome.Metrics!);
            // One line per success would be most of a busy node's log and a share of its CPU; failures stay visible.
            logger.LogDebug("Attempt {AttemptId} of {JobId} completed in {DurationMs:F1} ms", job.AttemptId, job.JobId, outcome.Metrics!.DurationMs);
        }
        finally
        {
            status.End(job.AttemptId);
        }
    }

    /// <summary>
    /// A failure to reach the gateway or the storage behind it: no connection, an error answer, a body cut off, or
    /// the request timing out (HttpClient's timeout cancels with a TimeoutException inside, not the consumer's token).
    /// </summary>
    private static bool StorageUnreachable(Exception ex, CancellationToken ct) => ex switch
    {
        HttpRequestException or HttpIOException => true,
        TaskCanceledException { InnerException: TimeoutException } => !ct.IsCancellationRequested,
        _ => false,
    };

    /// <summary>Says the attempt started, once it has run <see cref="WorkerOptions.StartReportDelay"/> without finishing.</summary>
    private async Task ReportStartAsync(AssignJob job, CancellationToken finished, CancellationToken ct)
    {
        var delay = options.Value.StartReportDelay;
        if (delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(delay, clock, finished);
            }
            catch (OperationCanceledException) when (finished.IsCancellationRequested)
            {
                return;
            }
        }
        await network.SendAsync(identity.Signed(new AttemptStarted { JobId = job.JobId, AttemptId = job.AttemptId, WorkerId = identity.WorkerId, OccurredAt = clock.GetUtcNow() }), ct);
    }

    private sealed record Outcome(IReadOnlyDictionary<string, Cid>? Outputs, AttemptMetrics? Metrics, (string Reason, string Detail)? Failure)
    {
        public static Outcome Fail(string reason, string detail) => new(null, null, (reason, detail));
    }

    private async Task<Outcome> RunAsync(ConsumeContext<AssignJob> context, CancellationToken ct)
    {
        var job = context.Message;
        var spec = job.Spec;
        if (KernelCatalog.CheckNames(spec.Kernel, spec.Inputs.Keys.ToList(), spec.Params) is { } nameError)
            return Outcome.Fail("input_invalid", nameError);
        await compute.CalibrateAsync();
        var backend = compute.For(spec.Kernel);
        var o = options.Value;

        // Fetch and verify to disk, and look only at the .npy headers, so a job too large for this node is
        // refused before any tensor is allocated.
        var files = new Dictionary<string, CachedInput>();
        var infos = new Dictionary<string, TensorInfo>();
        long inputBytes = 0;
        foreach (var (name, cid) in spec.Inputs)
        {
            var input = await cache.GetAsync(cid, o.MaxInputBytes - inputBytes, ct);
            if (input.FailureReason is { } reason)
                return Outcome.Fail(reason, $"input '{name}': {input.FailureDetail}");
            inputBytes += input.Bytes;
            try
            {
                await using var file = input.Open();
                var header = Npy.ReadHeader(file);
                infos[name] = new TensorInfo(header.DType, header.Shape);
            }
            catch (NpyFormatException ex)
            {
                return Outcome.Fail("input_invalid", $"input '{name}' is not a valid .npy tensor: {ex.Message}");
            }
            files[name] = input;
        }
        var plan = KernelCatalog.Plan(spec.Kernel, infos, spec.Params, out var planError);
        if (planError is not null)
            return Outcome.Fail("input_invalid", planError);
        var workingSet = infos.Values.Sum(i => i.Bytes) + plan.OutputBytes;
        if (workingSet > backend.MemoryBytes)
            return Outcome.Fail("input_too_large", $"{spec.Kernel} needs {workingSet:N0} bytes for its inputs and outputs; this worker's {backend.Name} device has {backend.MemoryBytes:N0}");

        var inputs = new Dictionary<string, NpyArray>();
        foreach (var (name, input) in files)
        {
            try
            {
                await using var file = input.Open();
                inputs[name] = Npy.Read(file);
            }
            catch (NpyFormatException ex)
            {
                // A header that promises more data than the file holds, for instance.
                return Outcome.Fail("input_invalid", $"input '{name}' is not a valid .npy tensor: {ex.Message}");
            }
        }

        // A slow node, for tests that need a job still running while they pause or restart something.
        if (o.Faults.KernelDelay > TimeSpan.Zero)
            await Task.Delay(o.Faults.KernelDelay, clock, ct);
        var progress = new LatestProgress();
        var metering = energy.Begin();
        double? measuredJoules = null;
        var watch = Stopwatch.StartNew();
        IReadOnlyDictionary<string, NpyArray> results;
        try
        {
            var computing = Task.Run(() => KernelRunner.Run(spec.Kernel, plan.Arguments, inputs, backend, new ComputeProgress(ct, progress.Set)), ct);
            await ReportProgressUntilDoneAsync(context, computing, progress, ct);
            results = await computing;
        }
        catch (KernelInputException ex)
        {
            return Outcome.Fail("input_invalid", ex.Message);
        }
        finally
        {
            // Ended however the kernel ends, so a failed attempt stops taking a share of the node's energy.
            watch.Stop();
            measuredJoules = energy.End(metering);
        }

        if (o.Faults.CorruptOutputs)
            results = FaultInjection.Corrupt(results);
        var outputs = new Dictionary<string, Cid>();
        foreach (var (name, tensor) in results)
            outputs[name] = await pinned.PinAsync(gateway, tensor, ct);

        var capabilities = await compute.CalibrateAsync();
        var seconds = watch.Elapsed.TotalSeconds;
        return new Outcome(outputs, new AttemptMetrics
        {
            DurationMs = watch.Elapsed.TotalMilliseconds,
            Gflop = plan.Gflop,
            Device = $"{backend.Name}: {backend.Device.Name}",
            // Measured from the package energy counter where there is one; else the node's calibrated draw shared
            // over its slots for the attempt's time.
            Joules = measuredJoules ?? seconds * capabilities.PowerWatts / Math.Max(1, o.Slots),
            JoulesEstimated = measuredJoules is null,
        }, null);
    }

    /// <summary>Reports the kernel's progress every interval while it runs, only when it moved.</summary>
    private async Task ReportProgressUntilDoneAsync(ConsumeContext<AssignJob> context, Task computing, LatestProgress progress, CancellationToken ct)
    {
        var job = context.Message;
        using var timer = new PeriodicTimer(options.Value.ProgressInterval, clock);
        var reported = 0.0;
        while (!computing.IsCompleted)
        {
            if (ct.IsCancellationRequested)
            {
                // The kernel stops at its next progress step; the caller observes how it ended.
                await Task.WhenAny(computing);
                return;
            }
            var tick = timer.WaitForNextTickAsync(ct).AsTask();
            await Task.WhenAny(computing, tick);
            var fraction = progress.Fraction;
            if (computing.IsCompleted || ct.IsCancellationRequested || fraction <= reported)
                continue;
            reported = fraction;
            try
            {
                await network.SendAsync(identity.Signed(new AttemptProgressed
                {
                    JobId = job.JobId,
                    AttemptId = job.AttemptId,
                    WorkerId = identity.WorkerId,
                    Fraction = Math.Round(fraction, 4),
                    OccurredAt = clock.GetUtcNow(),
                }), ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Progress is informative only: losing a report must not fail the attempt.
                logger.LogWarning("Progress of {AttemptId} not sent: {Message}", job.AttemptId, ex.Message);
            }
        }
    }

    private sealed class LatestProgress
    {
        private double _fraction;

        public double Fraction => Volatile.Read(ref _fraction);

        public void Set(double fraction) => Volatile.Write(ref _fraction, fraction);
    }
}
