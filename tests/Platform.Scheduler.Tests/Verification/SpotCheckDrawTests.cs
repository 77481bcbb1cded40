using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Hosting.Http;
using Platform.Scheduler.Verification;
using Xunit.Abstractions;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// The spot-check draw is keyed with the services' secret: scheduler instances agree, and a node, which knows the
/// job id but not the secret, cannot tell which of its results will be checked.
/// </summary>
public sealed class SpotCheckDrawTests(ITestOutputHelper output)
{
    private const int Seed = 16;

    // Job ids of the same form as the gateway's, from a fixed seed so the figures replay.
    private static List<JobId> JobIds(int count)
    {
        var random = new Random(Seed);
        return [.. Enumerable.Range(0, count).Select(_ => JobId.From("job_" + new string([.. Enumerable.Range(0, 26).Select(_ => "abcdefghijklmnopqrstuvwxyz234567"[random.Next(32)])])))];
    }

    private static SpotCheckDraw With(string secret) => new(Options.Create(new GatewayProofOptions { GatewaySecret = secret }));

    // What a node can compute alone: the draw the scheduler used before it was keyed, an unkeyed hash of the job id.
    private static double UnkeyedDraw(JobId job) => BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(job.Value)), 0) / (double)ulong.MaxValue;

    [Fact]
    public void Scheduler_instances_sharing_the_secret_make_the_same_choice_for_every_job()
    {
        output.WriteLine($"seed {Seed}");
        var secret = new string('s', 40);
        var (one, other) = (With(secret), With(secret));
        var jobs = JobIds(2000);
        Assert.All(jobs, job => Assert.Equal(one.Picks(job, 0.3), other.Picks(job, 0.3)));
        // The draw is a fair coin at the probability asked: about 30% of the jobs are picked.
        var picked = jobs.Count(job => one.Picks(job, 0.3));
        output.WriteLine($"{picked} of {jobs.Count} picked at 0.3");
        Assert.InRange(picked, 520, 680);
        Assert.All(jobs, job => Assert.True(one.Picks(job, 1)));
        Assert.All(jobs, job => Assert.False(one.Picks(job, 0)));
    }

    [Fact]
    public void Without_the_secret_a_node_guesses_its_checks_no_better_than_chance()
    {
        output.WriteLine($"seed {Seed}");
        var draw = With(new string('s', 40));
        var jobs = JobIds(2000);
        // A cheater that knows the draw would cheat only where it is not checked. Its best guess now is a hash of its
        // own: a guess from the unkeyed hash, or from a wrong secret, agrees with the real choice about half the time.
        var fromUnkeyed = jobs.Count(job => draw.Picks(job, 0.5) == UnkeyedDraw(job) < 0.5);
        var wrongSecret = With(new string('t', 40));
        var fromWrongSecret = jobs.Count(job => draw.Picks(job, 0.5) == wrongSecret.Picks(job, 0.5));
        output.WriteLine($"guesses right: {fromUnkeyed} of {jobs.Count} from the unkeyed hash, {fromWrongSecret} from a wrong secret");
        Assert.InRange(fromUnkeyed, 880, 1120);
        Assert.InRange(fromWrongSecret, 880, 1120);
    }
}
