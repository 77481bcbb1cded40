using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>A planted cheater among honest workers, across real processes: replicas, tie-break, slashing.</summary>
public sealed class VerificationTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    [Fact]
    public async Task A_worker_returning_wrong_outputs_in_a_two_replica_job_is_never_paid_is_slashed_and_the_job_completes_correctly()
    {
        const int seed = 61;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        var a = Api.RandomFloats(random, 64);
        var b = Api.RandomFloats(random, 64);
        var inputA = await http.PinAsync(NpyArray.FromFloat32(a, a.Length));
        var inputB = await http.PinAsync(NpyArray.FromFloat32(b, b.Length));

        // The cheater is alone in its region at first, so it certainly computes the first replica.
        var cheaterOperator = await network.CreateOperatorAsync();
        await network.StartWorkerAsync(cheaterOperator.Key, region: "verify", settings: new() { ["Worker__Faults__CorruptOutputs"] = "true" });
        using var submitted = await http.SubmitAsync(new
        {
            kernel = "vector-add",
            inputs = new { a = inputA.Cid, b = inputB.Cid },
            replicas = 2,
            requirements = new { region = "verify" },
        });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "verifying", "the cheater's result in, waiting for a second operator");

        var honestOperators = new[] { await network.CreateOperatorAsync(), await network.CreateOperatorAsync() };
        foreach (var honest in honestOperators)
            await network.StartWorkerAsync(honest.Key, region: "verify");

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed" && j.Cost is not null || j.Status == "failed", "job verified and settled");
        Assert.Equal("completed", done.Status);
        using var result = await http.GetAsync($"/v1/blobs/{done.Outputs!["c"]}");
        var c = Npy.Read(await result.Content.ReadAsStreamAsync()).Float32!;
        Assert.Equal(a.Zip(b, (x, y) => x + y), c);

        Assert.Equal(3, done.Attempts.Count);
        Assert.Equal(2, done.Attempts.Count(attempt => attempt.Status == "accepted"));
        var rejected = Assert.Single(done.Attempts, attempt => attempt.Status == "rejected");
        Assert.All(done.Attempts.Where(attempt => attempt.Status == "accepted"), attempt => Assert.NotNull(attempt.Signature));

        // The cheater is slashed (half of its stake by default) and earns nothing; both honest operators are paid.
        using var cheaterHttp = network.Client(cheaterOperator.Key);
        var slashed = await Eventually.UntilAsync(() => cheaterHttp.AccountAsync(), account => account.Staked < Network.OperatorStake,
            TimeSpan.FromSeconds(30), "the cheater's stake slashed");
        Assert.Equal(Network.OperatorStake / 2, slashed.Staked);
        Assert.Equal(0m, slashed.Earned);
        Assert.Equal(0m, slashed.Balance);
        // Each honest operator is paid its half of this job's cost, less the network fee (10% by default), once,
        // for the worker whose result was accepted: read from its ledger by job, not from a balance that grew.
        var share = Math.Round(done.Cost!.Value / 2 * 0.9m, 6, MidpointRounding.ToZero);
        foreach (var honest in honestOperators)
        {
            using var honestHttp = network.Client(honest.Key);
            var entries = await Eventually.UntilAsync(() => honestHttp.EntriesForJobAsync(job.Id), e => e.Any(x => x.Kind == "payout"),
                TimeSpan.FromSeconds(30), "an honest operator paid for the job");
            var payout = Assert.Single(entries, e => e.Kind == "payout");
            Assert.Equal(honest.AccountId, payout.AccountId);
            Assert.Contains(done.Attempts, attempt => attempt.Status == "accepted" && attempt.WorkerId == payout.WorkerId);
            Assert.Equal(share, payout.Amount);
        }

        var listed = (await http.GetFromJsonAsync<JsonElement>("/v1/workers")).EnumerateArray()
            .Single(w => w.GetProperty("operatorAccountId").GetString() == cheaterOperator.AccountId);
        Assert.Equal(rejected.WorkerId, listed.GetProperty("workerId").GetString());
        Assert.Equal(0.5, listed.GetProperty("reputation").GetDouble());
        Assert.Equal(Network.OperatorStake / 2, listed.GetProperty("operatorStake").GetDecimal());
    }
}
