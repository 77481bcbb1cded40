using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>No worker until the test starts them, and no rate limit on the hundreds of pins and submits.</summary>
public sealed class RogueNetwork : Network
{
    protected override bool StartsWorker => false;

    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;
}

/// <summary>
/// Issue 15's scenario across real processes: two honest nodes and one rogue node (it adds 1 to every output), each
/// of its own staked operator, on 200 two-replica jobs. The network accepts no wrong result and loses no job, the
/// rogue's operator is slashed for every result of its that was compared, and the honest operators lose nothing.
/// </summary>
public sealed class RogueNodeTests(RogueNetwork network, ITestOutputHelper output) : IClassFixture<RogueNetwork>
{
    private const int Jobs = 200;
    private const int Length = 32;
    private const int Parallel = 16;

    [Fact]
    public async Task Two_honest_nodes_and_a_rogue_on_200_replicated_jobs_accept_no_wrong_result_slash_only_the_rogue_and_lose_no_job()
    {
        const int seed = 1515;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var client = await network.CreateAccountAsync("client", 100_000m);
        using var http = network.Client(client.Key);

        // Each job its own inputs, so a wrong output cannot agree with another job's right one; the right output is
        // computed here (vector-add is exact in float32, so it is the honest nodes' bytes and CID).
        var inputs = new List<(float[] A, float[] B)>();
        for (var i = 0; i < Jobs; i++)
            inputs.Add((Api.RandomFloats(random, Length), Api.RandomFloats(random, Length)));
        var expected = inputs.Select(p => Cid.Compute(Npy.ToBytes(NpyArray.FromFloat32(p.A.Zip(p.B, (x, y) => x + y).ToArray(), Length))).ToString()).ToList();

        var honestOperators = new[] { await network.CreateOperatorAsync(), await network.CreateOperatorAsync() };
        var rogueOperator = await network.CreateOperatorAsync();
        foreach (var honest in honestOperators)
            await network.StartWorkerAsync(honest.Key, slots: 2);
        await network.StartWorkerAsync(rogueOperator.Key, slots: 2, settings: new() { ["Worker__Faults__CorruptOutputs"] = "true" });
        var operators = honestOperators.Append(rogueOperator).Select(o => o.AccountId).ToHashSet();
        var workers = await Eventually.UntilAsync(async () => await http.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json),
            list => operators.All(o => list!.Any(w => w.OperatorAccountId == o && w.Online)), TimeSpan.FromSeconds(60), "the three nodes online");
        var rogueWorker = workers!.Single(w => w.OperatorAccountId == rogueOperator.AccountId).WorkerId;
        var honestWorkers = workers!.Where(w => w.OperatorAccountId != rogueOperator.AccountId).Select(w => w.WorkerId).ToHashSet();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var ids = new string[Jobs];
        foreach (var batch in Enumerable.Range(0, Jobs).Chunk(Parallel))
        {
            await Task.WhenAll(batch.Select(async i =>
            {
                var a = await http.PinAsync(NpyArray.FromFloat32(inputs[i].A, Length));
                var b = await http.PinAsync(NpyArray.FromFloat32(inputs[i].B, Length));
                using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = a.Cid, b = b.Cid }, replicas = 2 });
                Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
                ids[i] = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!.Id;
            }));
        }
        output.WriteLine($"{Jobs} jobs submitted in {clock.Elapsed.TotalSeconds:0.0} s");

        // Every job reaches a terminal status with its cost settled and every result it received judged: none is lost.
        // (The view is eventually consistent: a job's completion and the rejection of a late disagreeing result can
        // reach it in different batches, so a result can read as submitted, or its attempt as still running, for a
        // moment after the job completed; a run of 2026-12-05 counted a penalty for an attempt the view still showed
        // running.)
        var jobs = new Job?[Jobs];
        await Eventually.UntilAsync(async () =>
        {
            var pending = Enumerable.Range(0, Jobs).Where(i => jobs[i] is null).ToList();
            foreach (var batch in pending.Chunk(Parallel))
            {
                await Task.WhenAll(batch.Select(async i =>
                {
                    var job = await http.GetJobAsync(ids[i]);
                    if (job.Status is "failed" or "cancelled" || job.Status == "completed" && job.Cost is not null && job.Attempts.All(a => a.Status is not ("submitted" or "assigned" or "running")))
                        jobs[i] = job;
                }));
            }
            return jobs.Count(j => j is not null);
        }, done => done == Jobs, TimeSpan.FromMinutes(10), $"all {Jobs} jobs finished");
        output.WriteLine($"all {Jobs} jobs finished {clock.Elapsed.TotalSeconds:0.0} s after the first submit");

        // No wrong result accepted: every job completed with the honest output, agreed by both honest operators.
        for (var i = 0; i < Jobs; i++)
        {
            var job = jobs[i]!;
            Assert.True(job.Status == "completed", $"job {job.Id} is {job.Status}: {job.Error?.Reason} {job.Error?.Detail}");
            Assert.True(expected[i] == job.Outputs!["c"], $"job {job.Id} delivered {job.Outputs!["c"]}, the right output is {expected[i]}");
        }
        foreach (var job in jobs)
        {
            var accepted = job!.Attempts.Where(a => a.Status == "accepted").Select(a => a.WorkerId).ToList();
            Assert.Equal(2, accepted.Count);
            Assert.True(accepted.Distinct().Count() == 2 && accepted.All(honestWorkers.Contains), $"job {job!.Id} accepted results of {string.Join(", ", accepted)}");
        }

        // The rogue's results are rejected wherever they were compared; it never had one accepted.
        var attempts = jobs.SelectMany(j => j!.Attempts).ToList();
        var rogueAttempts = attempts.Where(a => a.WorkerId == rogueWorker).ToList();
        var rejected = rogueAttempts.Where(a => a.Status == "rejected").ToList();
        output.WriteLine($"the rogue's attempts: {string.Join(", ", rogueAttempts.GroupBy(a => a.Status).Select(g => $"{g.Count()} {g.Key}"))}");
        Assert.NotEmpty(rejected);
        Assert.DoesNotContain(rogueAttempts, a => a.Status is "accepted" or "unverified");
        Assert.DoesNotContain(attempts, a => a.Status == "rejected" && a.WorkerId != rogueWorker);

        // The rogue's operator is slashed once per rejected result (half its stake each time), nobody else at all.
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));
        var penalties = (await Eventually.UntilAsync(
            async () => (await rewards.QueryAsync<(string AttemptId, string OperatorAccountId, decimal Slashed)>(
                "select attempt_id, operator_account_id, slashed from penalties")).ToList(),
            rows => rows.Count >= rejected.Count, TimeSpan.FromSeconds(60), "a penalty for each rejected result")).ToList();
        Assert.Equal(rejected.Select(a => a.AttemptId).Order(), penalties.Select(p => p.AttemptId).Order());
        Assert.All(penalties, p => Assert.Equal(rogueOperator.AccountId, p.OperatorAccountId));
        using var rogueHttp = network.Client(rogueOperator.Key);
        var rogueAccount = await Eventually.UntilAsync(() => rogueHttp.AccountAsync(),
            account => account.Staked == Network.OperatorStake - penalties.Sum(p => p.Slashed), TimeSpan.FromSeconds(30), "the rogue's stake slashed");
        output.WriteLine($"the rogue's operator: {rejected.Count} results rejected, stake {Network.OperatorStake} -> {rogueAccount.Staked}, earned {rogueAccount.Earned}");
        Assert.True(rogueAccount.Staked < Network.OperatorStake);
        Assert.Equal(0m, rogueAccount.Earned);
        var rogueView = (await http.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json))!.Single(w => w.WorkerId == rogueWorker);
        Assert.Equal(Math.Pow(0.5, rejected.Count), rogueView.Reputation, 9);

        // The honest operators keep their whole stake and are paid.
        foreach (var honest in honestOperators)
        {
            using var honestHttp = network.Client(honest.Key);
            var account = await honestHttp.AccountAsync();
            output.WriteLine($"honest operator {honest.AccountId}: stake {account.Staked}, earned {account.Earned}");
            Assert.Equal(Network.OperatorStake, account.Staked);
            Assert.True(account.Earned > 0, $"honest operator {honest.AccountId} earned nothing");
        }

        // Nothing faulted or dead-lettered on the way.
        var management = network.Environment.Infrastructure.RabbitMqManagement;
        var queues = await management.GetFromJsonAsync<JsonElement>($"api/queues/{Uri.EscapeDataString(network.Environment.Name)}?columns=name,messages");
        var deadLetters = queues.EnumerateArray().Select(q => q.GetProperty("name").GetString()!)
            .Where(name => name.EndsWith("_error", StringComparison.Ordinal) || name.EndsWith("_skipped", StringComparison.Ordinal)).ToList();
        Assert.True(deadLetters.Count == 0, $"dead-letter queues exist: {string.Join(", ", deadLetters)}");
        foreach (var service in network.Services)
            Assert.DoesNotContain("R-FAULT", service.Log(), StringComparison.Ordinal);
    }
}
