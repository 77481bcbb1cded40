using System.Net;
using System.Net.Http.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>DESIGN's main flow, through the public API, across all five services as real processes.</summary>
public sealed class MatmulJobTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    [Fact]
    public async Task Matmul_job_runs_on_a_worker_returns_the_right_product_and_moves_credits()
    {
        const int seed = 20261122;
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        const int m = 48, k = 64, n = 40;
        var a = Api.RandomFloats(rng, m * k);
        var b = Api.RandomFloats(rng, k * n);
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var operatorBefore = await operatorHttp.AccountAsync();

        var pinnedA = await http.PinAsync(NpyArray.FromFloat32(a, m, k));
        var pinnedB = await http.PinAsync(NpyArray.FromFloat32(b, k, n));
        // Pinning cost the client its one-time pin fees; the job's cost comes on top.
        var clientBefore = await http.AccountAsync();
        Assert.True(clientBefore.Balance < 100m, "the client paid pin fees");
        using var submitted = await http.SubmitAsync(new { kernel = "matmul", inputs = new { a = pinnedA.Cid, b = pinnedB.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        Assert.Equal($"/v1/jobs/{job.Id}", submitted.Headers.Location?.OriginalString);

        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed" && j.Cost is not null || j.Status == "failed", "job completed and settled");
        Assert.Equal("completed", done.Status);
        Assert.Null(done.Error);
        var accepted = Assert.Single(done.Attempts);
        Assert.Equal("accepted", accepted.Status);

        // The output is a verified blob holding A·B.
        var outputCid = done.Outputs!["c"];
        var bytes = await http.GetByteArrayAsync($"/v1/blobs/{outputCid}");
        Assert.Equal(outputCid, Cid.Compute(bytes).Value);
        var c = Npy.Read(bytes);
        Assert.Equal([m, n], c.Shape);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double expected = 0;
                for (var kk = 0; kk < k; kk++)
                    expected += (double)a[i * k + kk] * b[kk * n + j];
                Assert.True(Math.Abs(c.Float32![i * n + j] - expected) < 1e-4, $"c[{i},{j}] = {c.Float32[i * n + j]}, expected {expected}");
            }
        }

        // The client paid exactly the job's cost; the operator was paid this job's share of it, once, for the
        // worker that ran it: read from the operator's ledger by job, since the network's operator also earns from
        // the other tests' jobs, whose payouts may land while this one runs.
        var cost = done.Cost!.Value;
        Assert.True(cost > 0);
        var clientAfter = await http.AccountAsync();
        Assert.Equal(clientBefore.Balance - cost, clientAfter.Balance);
        Assert.Equal(0m, clientAfter.Escrowed);
        var entries = await Platform.Testing.Eventually.UntilAsync(() => operatorHttp.EntriesForJobAsync(job.Id), e => e.Any(x => x.Kind == "payout"),
            TimeSpan.FromSeconds(30), "this job's payout on the operator's ledger");
        var payout = Assert.Single(entries, e => e.Kind == "payout");
        Assert.Equal(network.Operator.AccountId, payout.AccountId);
        Assert.Equal(accepted.WorkerId, payout.WorkerId);
        Assert.Equal($"settle:{job.Id}", payout.IdempotencyKey);
        // One paid attempt: the cost of the work (the cost less the output's fee for keeping its m x n floats, at
        // 1 credit per GiB by default) less the network fee (10% by default), rounded down to 6 digits.
        Assert.Equal(Math.Round((cost - OutputFee(m * n * 4L)) * 0.9m, 6, MidpointRounding.ToZero), payout.Amount);
        Assert.All(entries, e => Assert.Contains(e.Kind, new[] { "payout", "mint", "efficiency-bonus" }));
        Assert.True(entries.Count(e => e.Kind == "mint") <= 1, "minted once at most");
        var operatorAfter = await operatorHttp.AccountAsync();
        Assert.True(operatorAfter.Earned - operatorBefore.Earned >= entries.Sum(e => e.Amount), "the account's earnings include this job's");

        // Its energy: the accepted attempt's joules (estimated on this machine, which has no power sensor), per
        // GFLOP of the 2·m·k·n the product takes; the worker's and the network's totals include it.
        var energy = done.Energy!;
        Assert.Equal(2.0 * m * k * n / 1e9, energy.Gflop, 12);
        Assert.True(energy.Joules > 0);
        Assert.Equal(energy.Joules / energy.Gflop, energy.JoulesPerGflop!.Value, 6);
        Assert.Equal(accepted.Joules, energy.Joules);
        Assert.Equal(accepted.JoulesEstimated, energy.Estimated);
        var worker = (await http.GetFromJsonAsync<List<Platform.Contracts.Api.WorkerView>>("/v1/workers", Api.Json))!.Single(w => w.WorkerId == accepted.WorkerId);
        Assert.True(worker.Energy.Jobs >= 1 && worker.Energy.Joules >= energy.Joules && worker.Energy.JoulesPerGflop > 0);
        var totals = (await http.GetFromJsonAsync<Platform.Contracts.Api.NetworkView>("/v1/network", Api.Json))!;
        Assert.True(totals.Energy.Jobs >= 1 && totals.Energy.Joules >= energy.Joules && totals.Energy.JoulesPerJob > 0 && totals.Energy.JoulesPerGflop > 0);
    }

    /// <summary>What keeping an output of this many data bytes costs at the default Pricing:PinFeePerGib (1 credit per GiB).</summary>
    private static decimal OutputFee(long bytes) => Math.Round(bytes / (decimal)(1L << 30), 6);

    [Fact]
    public async Task A_degenerate_product_pays_for_keeping_its_large_output_and_the_operator_is_paid_for_the_work_only()
    {
        // [2048,1] x [1,2048]: 8 MFLOP of work (the minimum charge) for a 16 MiB output, which is kept forever.
        const int m = 2048, n = 2048;
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var a = await http.PinAsync(NpyArray.FromFloat32(Enumerable.Range(0, m).Select(i => (float)i).ToArray(), m, 1));
        var b = await http.PinAsync(NpyArray.FromFloat32(Enumerable.Range(0, n).Select(j => 1f / (j + 1)).ToArray(), 1, n));
        var before = await http.AccountAsync();

        using var submitted = await http.SubmitAsync(new { kernel = "matmul", inputs = new { a = a.Cid, b = b.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" && j.Cost is not null || j.Status is "failed" or "rejected", "job completed and settled");
        Assert.Equal("completed", done.Status);

        // The minimum charge of 0.01 for the work and 16 MiB at 1 credit per GiB for the output: 0.025625.
        Assert.Equal(0.015625m, OutputFee(m * n * 4L));
        Assert.Equal(0.01m + 0.015625m, done.Cost);
        Assert.Equal(before.Balance - done.Cost, (await http.AccountAsync()).Balance);
        // The operator is paid 90% of the work, not of the output fee, which keeps the output.
        var entries = await Platform.Testing.Eventually.UntilAsync(() => operatorHttp.EntriesForJobAsync(job.Id), e => e.Any(x => x.Kind == "payout"),
            TimeSpan.FromSeconds(30), "this job's payout on the operator's ledger");
        Assert.Equal(0.009m, Assert.Single(entries, e => e.Kind == "payout").Amount);
        var output = Npy.Read(await http.GetByteArrayAsync($"/v1/blobs/{done.Outputs!["c"]}"));
        Assert.Equal([m, n], output.Shape);
    }

    [Fact]
    public async Task Vector_add_job_completes_with_the_element_wise_sum()
    {
        const int seed = 7;
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var a = Api.RandomFloats(rng, 1000);
        var b = Api.RandomFloats(rng, 1000);
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        var pinnedA = await http.PinAsync(NpyArray.FromFloat32(a, a.Length));
        var pinnedB = await http.PinAsync(NpyArray.FromFloat32(b, b.Length));

        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = pinnedA.Cid, b = pinnedB.Cid } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "job finished");

        Assert.Equal("completed", done.Status);
        var c = Npy.Read(await http.GetByteArrayAsync($"/v1/blobs/{done.Outputs!["c"]}"));
        Assert.Equal(a.Zip(b, (x, y) => x + y), c.Float32!);
        // Placement weighs the bytes a node must fetch: the scheduler was told the inputs' size, read at submit.
        await using var scheduler = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        Assert.Equal(pinnedA.Size + pinnedB.Size, await scheduler.ExecuteScalarAsync<long>("select input_bytes from jobs where id = @id", new { id = job.Id }));
    }

    [Fact]
    public async Task Job_the_client_cannot_afford_is_rejected_with_the_reason()
    {
        var client = await network.CreateAccountAsync("client", 0m);
        using var http = network.Client(client.Key);
        // The operator pins for free; a client with no credits could not pin at all.
        using var operatorHttp = network.Client(network.Operator.Key);
        var pinned = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f], 2));

        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = pinned.Cid, b = pinned.Cid } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status != "pending", "job decided");

        Assert.Equal("rejected", done.Status);
        Assert.Equal("insufficient_credits", done.Error?.Reason);
        Assert.Equal(0m, (await http.AccountAsync()).Balance);
    }
}
