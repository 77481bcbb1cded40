using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Hosting.Http;
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
}

/// <summary>
/// The draw that decides whether a job's result is checked: HMAC-SHA256 of the job id under a key derived from
/// Platform:GatewaySecret, as a number in [0, 1]. Every scheduler instance (they share the secret) and every
/// redelivery makes the same choice; a node, which knows the job id and can read its own streak on the placement
/// view, but never the secret, cannot tell which of its results will be checked. (An unkeyed hash of the id, as
/// before, let a cheater compute it and cheat only on the jobs that would not be checked.)
/// </summary>
public sealed class SpotCheckDraw(IOptions<GatewayProofOptions> options)
{
    private readonly byte[] _key = KeyFrom(options.Value.GatewaySecret ?? throw new InvalidOperationException("Platform:GatewaySecret is not set"));

    /// <summary>The draw's own key, apart from the gateway proof's use of the same secret.</summary>
    public static byte[] KeyFrom(string gatewaySecret) => HMACSHA256.HashData(Encoding.UTF8.GetBytes(gatewaySecret), "platform spot-check draw v1"u8);

    public static double Draw(byte[] key, string jobId) =>
        BitConverter.ToUInt64(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(jobId)), 0) / (double)ulong.MaxValue;

    public double Draw(JobId job) => Draw(_key, job.Value);

    /// <summary>Whether this job's result is checked at <paramref name="probability"/>.</summary>
    public bool Picks(JobId job, double probability) => probability >= 1 || probability > 0 && Draw(job) < probability;
}
