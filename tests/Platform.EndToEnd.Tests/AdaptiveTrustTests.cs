using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>Spot checks on, with the default trust settings, the rate limits lifted, and no worker until the test starts them.</summary>
public sealed class TrustNetwork : Network
{
    protected override bool StartsWorker => false;

    protected override bool SpotChecks => true;

    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;

    // One tiny job per slot: placement ranks a worker by (its jobs + 1) / its rate, so with sixteen tiny jobs to a
    // slot the honest workers' few jobs barely counted, and a cheater that calibrated slower on a busy machine was
    // never chosen (the cheater "was never given a job" in one full run of 2026-12-05). Now each job an honest worker
    // holds doubles, then triples, its key, and a batch of eight overflows their six slots.
    protected override Dictionary<string, string?> SchedulerOverrides => new() { ["Scheduler__TinyJobsPerSlot"] = "1" };
}

/// <summary>
/// Adaptive trust across real processes: honest workers earn streaks and are checked less and less, so a steady
/// network pays little for verification, while a cheater that joins has its first results checked and is caught.
/// Which results are checked is the scheduler's draw from each job's id (<see cref="Draw"/>); the ids are the
/// gateway's, random by design, so the test prints every job's id and draw, and asserts, job by job, what the rule
/// makes of those draws: a run's overhead figures replay from its output, and no figure is left to chance.
/// </summary>
public sealed class AdaptiveTrustTests(TrustNetwork network, ITestOutputHelper output) : IClassFixture<TrustNetwork>
{
    private const int WarmUpJobs = 90;
    private const int SteadyJobs = 150;

    // The scheduler's defaults (SchedulerOptions): every result is checked until a streak of 5, then 1/streak, never below 1%.
    private const int TrustThreshold = 5;
    private const double MinimumCheckProbability = 0.01;

    [Fact]
    public async Task Verification_costs_under_ten_percent_in_a_steady_honest_network_and_a_cheater_is_caught_on_its_first_job()
    {
        const int seed = 92;
        output.WriteLine($"seed {seed}; spot-check draws keyed by this run's gateway secret {network.Environment.GatewaySecret}");
        var random = new Random(seed);
        var client = await network.CreateAccountAsync("client", 10_000m);
        using var http = network.Client(client.Key);
        var a = Api.RandomFloats(random, 16);
        var b = Api.RandomFloats(random, 16);
        var inputA = (await http.PinAsync(NpyArray.FromFloat32(a, a.Length))).Cid;
        var inputB = (await http.PinAsync(NpyArray.FromFloat32(b, b.Length))).Cid;
        var expected = Npy.ToBytes(NpyArray.FromFloat32(a.Zip(b, (x, y) => x + y).ToArray(), a.Length));

        // Three honest operators, one worker each: every one can check the others.
        var honest = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var account = await network.CreateOperatorAsync();
            await network.StartWorkerAsync(account.Key, slots: 2);
            honest.Add(await WorkerOfOperatorAsync(http, account.AccountId));
        }

        var warmUp = await RunAsync(http, inputA, inputB, WarmUpJobs);
        Print("warm-up", warmUp);
        // Streaks only grow while every result agrees, so each honest worker's streak now is the least it has at
        // any decision of the steady phase, and its check probability the most.
        var streaks = new List<int>();
        foreach (var worker in honest)
        {
            var view = (await http.GetFromJsonAsync<WorkerPlacementView>($"/v1/workers/{worker}/placement", Api.Json))!;
            streaks.Add(view.Trust.Single(t => t.Kernel == "vector-add").Streak);
        }
        var ceiling = Math.Max(1.0 / streaks.Min(), MinimumCheckProbability);
        output.WriteLine($"streaks after the warm-up: {string.Join(", ", streaks)}; no steady result is checked with probability above {ceiling:F4}");
        Assert.True(streaks.Min() >= TrustThreshold, $"every honest worker trusted after the warm-up (streaks {string.Join(", ", streaks)})");

        var steady = await RunAsync(http, inputA, inputB, SteadyJobs);
        Print("steady", steady);
        var warmUpOverhead = Overhead(warmUp);
        var steadyOverhead = Overhead(steady);
        output.WriteLine($"verification overhead: {warmUpOverhead:P1} over the first {WarmUpJobs} jobs (new workers are always checked), "
            + $"{steadyOverhead:P1} over the next {SteadyJobs} (steady); {steady.Count(job => Draw(job.Id) < ceiling)} steady jobs drew below {ceiling:F4}");
        Assert.All(warmUp.Concat(steady), job => Assert.Equal("completed", job.Status));
        Assert.DoesNotContain(warmUp.Concat(steady).SelectMany(job => job.Attempts), attempt => attempt.Status == "rejected");
        // The rule, job by job: a draw at or above the ceiling is never checked, one below the floor always is.
        Assert.All(steady.Where(job => Draw(job.Id) >= ceiling), job => Assert.False(Checked(job), $"{job.Id} (draw {Draw(job.Id):F4}) checked above its worker's probability"));
        Assert.All(steady.Where(job => Draw(job.Id) < MinimumCheckProbability), job => Assert.True(Checked(job), $"{job.Id} (draw {Draw(job.Id):F4}) not checked below the floor"));
        Assert.True(steadyOverhead < 0.10, $"steady verification overhead {steadyOverhead:P1} should be under 10%");
        Assert.True(warmUpOverhead > steadyOverhead, "checks should thin out as the workers' streaks grow");

        // The network reports the same figure over the jobs it completed.
        var reported = (await http.GetFromJsonAsync<NetworkView>("/v1/network", Api.Json))!.Verification;
        Assert.Equal(WarmUpJobs + SteadyJobs, reported.Jobs);
        Assert.Equal(ExtraAttempts(warmUp) + ExtraAttempts(steady), reported.ExtraAttempts);

        // A cheater joins. Jobs are sent until it has computed one: its result is checked, loses, and the job
        // still gets the right answer.
        var cheaterOperator = await network.CreateOperatorAsync();
        var cheater = await network.StartWorkerAsync(cheaterOperator.Key, slots: 2, settings: new() { ["Worker__Faults__CorruptOutputs"] = "true" });
        var cheaterId = await WorkerOfOperatorAsync(http, cheaterOperator.AccountId);
        var cheaterJobs = new List<Job>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (cheaterJobs.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the cheater was never given a job");
            var batch = await RunAsync(http, inputA, inputB, 8);
            cheaterJobs.AddRange(batch.Where(job => job.Attempts.Any(attempt => attempt.WorkerId == cheaterId)));
            foreach (var job in batch)
            {
                Assert.Equal("completed", job.Status);
                Assert.Equal(expected, await (await http.GetAsync($"/v1/blobs/{job.Outputs!["c"]}")).Content.ReadAsByteArrayAsync());
            }
        }
        // The job's view says completed as soon as the completion is applied; the losing attempt's own status follows in
        // the read model's next change (one seen as "submitted" a moment before, in run 41).
        var judged = await http.WaitForAsync(cheaterJobs[0].Id, job => job.Attempts.Single(attempt => attempt.WorkerId == cheaterId).Status != "submitted",
            "the cheater's attempt judged");
        var caught = judged.Attempts.Single(attempt => attempt.WorkerId == cheaterId);
        Assert.Equal("rejected", caught.Status);
        output.WriteLine($"the cheater's first result was checked and rejected (job {cheaterJobs[0].Id})");

        var placement = (await http.GetFromJsonAsync<WorkerPlacementView>($"/v1/workers/{cheaterId}/placement", Api.Json))!;
        var trust = Assert.Single(placement.Trust);
        Assert.True(trust.Mismatches >= 1);
        Assert.Equal(1.0, trust.CheckProbability);
        GC.KeepAlive(cheater);
    }

    private static async Task<List<Job>> RunAsync(HttpClient http, string a, string b, int count)
    {
        var ids = new List<string>();
        for (var i = 0; i < count; i++)
        {
            using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a, b } });
            Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
            ids.Add((await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!.Id);
        }
        var jobs = new List<Job>();
        foreach (var id in ids)
            // Finished, and every attempt's ending seen too: a rejection and the completion are separate messages to the
            // gateway, so "completed" can be read before the checked attempt says "rejected".
            jobs.Add(await http.WaitForAsync(id, job => job.Status is "completed" or "failed" or "cancelled"
                && !job.Attempts.Any(attempt => attempt.Status is "assigned" or "running"), $"job {id} finished with every attempt ended"));
        return jobs;
    }

    /// <summary>
    /// The scheduler's draw for a job (SpotCheckDraw): the first 8 bytes of HMAC-SHA256 of its id, under a key derived
    /// from the services' gateway secret, as a little-endian number over the largest one; the result is checked when
    /// the draw is below its worker's check probability. The secret is this run's test secret (printed), so the
    /// figures replay; a node never has it.
    /// </summary>
    private double Draw(string jobId) =>
        BitConverter.ToUInt64(HMACSHA256.HashData(HMACSHA256.HashData(Encoding.UTF8.GetBytes(network.Environment.GatewaySecret), "platform spot-check draw v1"u8),
            Encoding.UTF8.GetBytes(jobId)), 0) / (double)ulong.MaxValue;

    private static bool Checked(Job job) => job.Attempts.Count(attempt => attempt.Status is "accepted" or "rejected" or "unverified") > 1;

    private void Print(string phase, List<Job> jobs) =>
        output.WriteLine($"{phase} jobs (id draw, * checked): " + string.Join(" ", jobs.Select(job => $"{job.Id} {Draw(job.Id):F4}{(Checked(job) ? "*" : "")}")));

    // Results computed beyond the one the client asked for: spot checks and tie-breakers.
    private static int ExtraAttempts(IEnumerable<Job> jobs) =>
        jobs.Sum(job => job.Attempts.Count(attempt => attempt.Status is "accepted" or "rejected" or "unverified") - 1);

    private static double Overhead(List<Job> jobs) => (double)ExtraAttempts(jobs) / jobs.Count;

    private static async Task<string> WorkerOfOperatorAsync(HttpClient http, string operatorAccountId) =>
        (await Eventually.UntilAsync(async () => await http.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json),
            workers => workers!.Any(w => w.OperatorAccountId == operatorAccountId && w.Online), TimeSpan.FromSeconds(30), $"a worker of {operatorAccountId} online"))!
        .First(w => w.OperatorAccountId == operatorAccountId).WorkerId;
}
