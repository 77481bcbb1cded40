using System.Security.Cryptography;
using System.Text;
using Platform.Contracts;

namespace Platform.Scheduler.Verification;

/// <summary>
/// Which single-replica jobs are quietly verified. The choice is a hash of the job id, so every scheduler
/// instance and every redelivery makes the same one, and a worker cannot tell a checked job from any other.
/// </summary>
public static class SpotChecks
{
    public static bool Picks(JobId job, double fraction)
    {
        if (fraction <= 0)
            return false;
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(job.Value));
        var position = BitConverter.ToUInt64(hash, 0) / (double)ulong.MaxValue;
        return position < fraction;
    }
}
