using Platform.Contracts.Messages;

namespace Platform.Scheduler.Verification;

/// <summary>
/// What the scheduler makes of the figures a node reports with its result. None of them is believed: every figure
/// is bounded before it is stored or passed on (a node's NaN, infinity, negative or 1e300 must not reach a sum, a
/// jsonb column or rewards' numeric columns), the work an attempt did is the job's own GFLOP estimate (the
/// gateway's kernel cost model applied to the input shapes), and its joules count only when they are plausible.
/// </summary>
public static class AttemptFigures
{
    // Far beyond any real attempt (30 days, 10^9 GFLOP, 10^12 J = 278 MWh), far below anything that overflows a sum.
    public const double MaxDurationMs = 30 * 24 * 3_600_000.0;
    public const double MaxGflop = 1e9;
    public const double MaxJoules = 1e12;
    public const int MaxDeviceLength = 200;

    /// <summary>
    /// The node's metrics as statistics: duration and GFLOP clamped to [0, max] (NaN is 0), joules null unless
    /// finite, non-negative and at most <see cref="MaxJoules"/>, the device name cut to a sane length.
    /// </summary>
    public static AttemptMetrics Bound(AttemptMetrics m) => m with
    {
        DurationMs = Clamp(m.DurationMs, MaxDurationMs),
        Gflop = Clamp(m.Gflop, MaxGflop),
        Device = m.Device is null ? "" : m.Device.Length > MaxDeviceLength ? m.Device[..MaxDeviceLength] : m.Device,
        Joules = m.Joules is { } j && double.IsFinite(j) && j is >= 0 and <= MaxJoules ? j : null,
    };

    /// <summary>The job's GFLOP as the network estimated it, bounded the same way (0 when unknown).</summary>
    public static double JobGflop(double? estimated) => Clamp(estimated ?? 0, MaxGflop);

    private static double Clamp(double value, double max) => double.IsNaN(value) || value <= 0 ? 0 : Math.Min(value, max);
}

/// <summary>
/// Checks a node's joules claim against what the network knows: the worker's calibrated power and speed and the
/// wall time the scheduler measured by its own clock, from the attempt's assignment to its result's receipt. Only
/// a claim that passes is kept (<see cref="AcceptedAttempt.CheckedJoules"/>); it alone earns the efficiency bonus
/// and counts in the scheduler's energy ranking (worker_energy). A claim that fails is not an offence (an
/// estimate can be off), it just counts for nothing.
/// </summary>
public static class EnergyClaims
{
    // A device draws at most its calibrated power, give or take turbo and a calibration that did not load it
    // fully: twice that over the whole wall time (which also covers input download and output upload) is the most
    // an attempt can have used. Not divided by the attempts running on the worker: the scheduler knows that count
    // only when the result arrives, and an attempt that ran alone (a sensor gives it the whole package) may have
    // been joined by others just before.
    public const double HighFactor = 2;
    // At least a quarter of calibrated power, over the least compute time the work can take at the worker's
    // calibrated speed (never more than the wall time), shared over its slots (honest workers estimate
    // power x time / slots, and a sensor shares the package among at most that many attempts). The quarter
    // leaves room for jobs that run faster than calibration did and for a package that draws less than its
    // calibrated full load; below it a node understates its energy to win the efficiency bonus.
    public const double LowFactor = 0.25;
    // No device computes float32 at anywhere near 250 GFLOP per joule (the best GPUs manage about a third of that):
    // a claim below GFLOP / 250 is impossible whatever the node says about its power and speed.
    public const double MaxGflopPerJoule = 250;
    // The range a node's power figure is taken within (a phone to a rack of GPUs), and the most slots its energy
    // may be shared over, so neither a tiny power nor a huge slot count makes any claim pass.
    public const double MinWatts = 1;
    public const double MaxWatts = 10_000;
    public const int MaxSlots = 64;

    /// <summary>The worker's registration as the check reads it: calibrated power, slots and GFLOP/s for the job's kernel.</summary>
    public sealed record Calibration(double PowerWatts, int Slots, double? Gflops);

    /// <summary>The claim when it is plausible, else null. <paramref name="wall"/> is the scheduler's own measure.</summary>
    public static double? Check(double? joules, double jobGflop, Calibration worker, TimeSpan wall)
    {
        if (joules is not { } claimed || !double.IsFinite(claimed) || claimed <= 0)
            return null;
        if (!double.IsFinite(worker.PowerWatts) || worker.PowerWatts <= 0 || worker.Gflops is not { } rate || !double.IsFinite(rate) || rate <= 0
            || !double.IsFinite(jobGflop) || jobGflop <= 0)
            return null;
        var watts = Math.Clamp(worker.PowerWatts, MinWatts, MaxWatts);
        var slots = Math.Clamp(worker.Slots, 1, MaxSlots);
        var seconds = Math.Max(0, wall.TotalSeconds);
        var high = HighFactor * watts * seconds;
        var computeSeconds = Math.Min(seconds, jobGflop / rate);
        var low = Math.Max(jobGflop / MaxGflopPerJoule, LowFactor * watts * computeSeconds / slots);
        return claimed >= low && claimed <= high ? claimed : null;
    }
}
