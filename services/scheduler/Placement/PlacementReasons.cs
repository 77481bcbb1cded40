using System.Globalization;

namespace Platform.Scheduler.Placement;

/// <summary>What became of a worker in one placement: chosen, or the reason it was passed over.</summary>
public enum PlacementReason
{
    Chosen,
    StakeTooLow,
    ReputationTooLow,
    HeartbeatsMissed,
    KernelUnsupported,
    DeviceMismatch,
    RegionMismatch,
    MemoryTooSmall,
    SameOperatorAsResult,
    NoFreeSlot,
    FailedThisJob,
    SlowerThanChosen,
}

/// <summary>The facts about a worker that explanations quote.</summary>
public sealed record WorkerFacts(string Id, string Region, long MemoryMb, int Slots, IReadOnlyCollection<string> DeviceKinds, decimal Stake, double Reputation);

/// <summary>One placement as an operator reads it: a code, what happened in plain words, and what would change it.</summary>
public sealed record PlacementExplanation(string Code, string Message, string? Fix);

/// <summary>
/// Turns a placement outcome into words. Messages quote the numbers the decision was made on, so an operator
/// can see how far off the worker was; every reason an operator can act on says how.
/// </summary>
public static class PlacementReasons
{
    public static string Code(this PlacementReason reason) => reason switch
    {
        PlacementReason.Chosen => "chosen",
        PlacementReason.StakeTooLow => "stake_too_low",
        PlacementReason.ReputationTooLow => "reputation_too_low",
        PlacementReason.HeartbeatsMissed => "heartbeats_missed",
        PlacementReason.KernelUnsupported => "kernel_unsupported",
        PlacementReason.DeviceMismatch => "device_mismatch",
        PlacementReason.RegionMismatch => "region_mismatch",
        PlacementReason.MemoryTooSmall => "memory_too_small",
        PlacementReason.SameOperatorAsResult => "same_operator_as_result",
        PlacementReason.NoFreeSlot => "no_free_slot",
        PlacementReason.FailedThisJob => "failed_this_job",
        PlacementReason.SlowerThanChosen => "slower_than_chosen",
        _ => throw new ArgumentOutOfRangeException(nameof(reason)),
    };

    /// <summary>
    /// Why a worker may get no work at all, whatever the job (heartbeats late, too little stake, too low a
    /// reputation, in the order an operator would fix them); null when it may. The dispatcher and a worker's
    /// standing both judge by this.
    /// </summary>
    public static PlacementReason? Ineligibility(bool alive, decimal stake, double reputation, SchedulerOptions options) =>
        !alive ? PlacementReason.HeartbeatsMissed
        : stake < options.MinimumStake ? PlacementReason.StakeTooLow
        : reputation < options.MinimumReputation ? PlacementReason.ReputationTooLow
        : null;

    public static PlacementExplanation Explain(PassedOver outcome, WorkerFacts worker, JobDemand job, string? chosenWorkerId, SchedulerOptions options)
    {
        var kernel = job.Kernel;
        var (message, fix) = outcome.Reason switch
        {
            PlacementReason.Chosen => ($"Chosen for a {kernel} job.", null),
            PlacementReason.StakeTooLow => (
                $"Its operator has staked {Credits(worker.Stake)} credits; workers get work once their operator has staked {Credits(options.MinimumStake)}.",
                $"Stake {Credits(options.MinimumStake - worker.Stake)} more credits: ./platform account stake {Credits(options.MinimumStake - worker.Stake)}"),
            PlacementReason.ReputationTooLow => (
                string.Create(CultureInfo.InvariantCulture, $"Its reputation is {worker.Reputation:0.00}, below the {options.MinimumReputation:0.00} a worker needs: its results disagreed with other operators' workers."),
                "Find what made its results wrong (driver, overclocking, failing memory), then start the node with a new identity: reputation belongs to a worker id."),
            PlacementReason.HeartbeatsMissed => (
                "It has missed its last heartbeats, so it gets no new work until they resume.",
                "Check that the node is running and can reach the network's message broker."),
            PlacementReason.KernelUnsupported => (
                $"It does not run {kernel}.",
                $"Enable a backend that runs {kernel} (docs/KERNELS.md lists what each needs); jobs for the kernels it runs still come to it."),
            PlacementReason.DeviceMismatch => (
                $"The job asked for a {job.Device}; this worker has {string.Join(" and ", worker.DeviceKinds)}.",
                $"Nothing to fix unless the machine has a {job.Device}: then install its OpenCL driver and restart the node."),
            PlacementReason.RegionMismatch => (
                $"The job asked for region {job.Region}; this worker is in {worker.Region}.",
                $"Nothing to fix unless the machine really is in {job.Region}: then set Worker:Region and restart the node."),
            PlacementReason.MemoryTooSmall => (
                $"The job needs {job.MinMemoryMb} MB of memory; this worker offers {worker.MemoryMb} MB.",
                "Offer more memory (Worker:MemoryMb) if the machine has it to spare."),
            PlacementReason.SameOperatorAsResult => (
                "The job already has a result from this worker's operator and needs one from another operator to compare with.",
                null),
            PlacementReason.NoFreeSlot => (
                $"All {worker.Slots} of its slots were busy.",
                "Nothing is wrong; raise Worker:Slots if the machine has cores and memory to spare."),
            PlacementReason.FailedThisJob => (
                "It already failed this job, so other workers were tried first.",
                "The job's attempts say why it failed here."),
            PlacementReason.SlowerThanChosen => Compared(outcome, job, chosenWorkerId),
            _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
        };
        return new PlacementExplanation(outcome.Reason.Code(), message, fix);
    }

    private static (string, string?) Compared(PassedOver outcome, JobDemand job, string? chosenWorkerId)
    {
        var (what, unit) = job.Policy switch
        {
            PlacementPolicy.Energy => ("use", "J"),
            PlacementPolicy.Cost => ("cost", "kWh-price units"),
            _ => ("take", "s"),
        };
        var ratio = outcome.ChosenScore > 0 ? outcome.Score / outcome.ChosenScore : 1;
        var policy = job.Policy.ToString().ToLowerInvariant();
        if (ratio <= 1.0005)
        {
            return ($"It was as good as worker {chosenWorkerId} to within 0.05% for a {job.Kernel} job under the {policy} policy; "
                + "the other won on the last digits of the estimate (or, on an exact tie, on worker id).",
                "Nothing to fix: near ties go either way.");
        }
        var fix = job.Policy switch
        {
            PlacementPolicy.Energy => "Lower its joules per GFLOP: a more efficient device, or measured rather than estimated power.",
            PlacementPolicy.Cost => "Its region's energy price and joules per GFLOP decide; a more efficient device helps.",
            _ => "Faster hardware or fewer busy slots; restart the node to recalibrate if its benchmark under-rates the machine.",
        };
        return ($"Worker {chosenWorkerId} was chosen for a {job.Kernel} job under the {policy} policy: this worker would {what} "
            + $"{Number(outcome.Score)} {unit} against {Number(outcome.ChosenScore)} {unit}, {ratio.ToString("0.0#", CultureInfo.InvariantCulture)}× as much.", fix);
    }

    private static string Credits(decimal value) => Math.Max(0, value).ToString("0.######", CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString(value >= 100 ? "0" : value >= 1 ? "0.0#" : "0.####", CultureInfo.InvariantCulture);
}
