using System.Security.Cryptography;
using System.Text;
using Platform.Contracts;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Verification;

/// <summary>
/// Adaptive trust: which single-replica results are quietly verified by another operator's worker. Each worker
/// has, per kernel, a streak of results accepted in a row. Below <see cref="SchedulerOptions.TrustThreshold"/>
/// every result is checked, so a new or caught worker proves itself first; above it a result is checked with
/// probability 1/streak (never below <see cref="SchedulerOptions.MinimumCheckProbability"/>), so checks thin out
/// as trust builds and the overhead of an honest network falls toward the floor. A failed verification resets
/// the streak to zero.
/// </summary>
public static class SpotChecks
{
    public static double Probability(int streak, SchedulerOptions options)
    {
        if (!options.SpotChecks)
            return 0;
        if (streak < options.TrustThreshold || streak <= 0)
            return 1;
        return Math.Max(1.0 / streak, options.MinimumCheckProbability);
    }

    /// <summary>
    /// Whether this job's result is checked. The draw is a hash of the job id, so every scheduler instance and
    /// every redelivery makes the same choice, and a worker cannot tell a checked job from any other.
    /// </summary>
    public static bool Picks(JobId job, double probability)
    {
        if (probability <= 0)
            return false;
        if (probability >= 1)
            return true;
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(job.Value));
        var position = BitConverter.ToUInt64(hash, 0) / (double)ulong.MaxValue;
        return position < probability;
    }
}
