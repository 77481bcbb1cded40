using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Signing;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Verification by equality across real processes (issue 17): two honest workers of different operators, one
/// computing on SIMD and one on OpenCL, return byte-identical results, so the scheduler accepts them by equal
/// output CIDs and runs no tolerance comparison.
/// </summary>
public sealed class ReproducibleReplicaTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    [Fact]
    public async Task Two_honest_replicas_on_simd_and_opencl_agree_by_output_cid_without_a_tolerance_comparison()
    {
        const int seed = 1717;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        // An MLP with tanh: two GEMMs, bias adds and tanh, where backends that each add in their own order or use
        // their own tanh differ in the last bits (they did before issue 17). Shapes off every tile and lane width.
        const int n = 37, d = 203, h = 45, o = 7;
        Task<Pinned> PinAsync(params int[] shape) =>
            http.PinAsync(NpyArray.FromFloat32(Api.RandomFloats(random, shape.Aggregate(1, (x, y) => x * y)), shape));
        var inputs = new { x = (await PinAsync(n, d)).Cid, w1 = (await PinAsync(d, h)).Cid, b1 = (await PinAsync(h)).Cid, w2 = (await PinAsync(h, o)).Cid, b2 = (await PinAsync(o)).Cid };

        var simdOperator = await network.CreateOperatorAsync();
        var openClOperator = await network.CreateOperatorAsync();
        await network.StartWorkerAsync(simdOperator.Key, region: "repro", settings: new() { ["Worker__Backend"] = "simd" });
        await network.StartWorkerAsync(openClOperator.Key, region: "repro", settings: new() { ["Worker__Backend"] = "opencl" });
        var workers = await Eventually.UntilAsync(
            async () => (await http.GetFromJsonAsync<JsonElement>("/v1/workers")).EnumerateArray()
                .Where(w => w.GetProperty("region").GetString() == "repro" && w.GetProperty("online").GetBoolean()).ToList(),
            w => w.Count == 2, TimeSpan.FromSeconds(60), "both workers online");
        string BackendOf(JsonElement w) => w.GetProperty("backendPerKernel").GetProperty("mlp-infer").GetString()!;
        Assert.Equal(["opencl", "simd"], workers.Select(BackendOf).Order());
        Assert.All(workers, w => Assert.Equal(KernelArithmetic.Current, w.GetProperty("kernelRevision").GetInt32()));

        using var submitted = await http.SubmitAsync(new
        {
            kernel = "mlp-infer",
            inputs,
            @params = new { activation = "tanh" },
            replicas = 2,
            requirements = new { region = "repro" },
        });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        // Two results in and still verifying means they disagreed (the job then waits for a third operator's worker).
        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed" || j.Attempts.Count(a => a.Status == "submitted") == 2,
            "the two replicas compared");
        Assert.True(done.Status == "completed", $"the replicas on SIMD and OpenCL did not agree: the job is {done.Status}");

        // Both attempts accepted, one per backend, and each signed exactly the job's output CIDs: the same bytes.
        Assert.Equal(2, done.Attempts.Count);
        Assert.All(done.Attempts, attempt => Assert.Equal("accepted", attempt.Status));
        var outputs = done.Outputs!.ToDictionary(o => o.Key, o => Cid.Parse(o.Value));
        foreach (var attempt in done.Attempts)
        {
            var worker = workers.Single(w => w.GetProperty("workerId").GetString() == attempt.WorkerId);
            output.WriteLine($"attempt {attempt.AttemptId} on {BackendOf(worker)}: {string.Join(", ", outputs.Select(o => $"{o.Key}={o.Value}"))}");
            Assert.True(ResultSignature.Verify(worker.GetProperty("publicKey").GetString(), attempt.Signature, JobId.From(done.Id), AttemptId.From(attempt.AttemptId), outputs),
                $"attempt {attempt.AttemptId} did not sign the job's outputs");
        }
        Assert.Equal(["opencl", "simd"], done.Attempts.Select(attempt => BackendOf(workers.Single(w => w.GetProperty("workerId").GetString() == attempt.WorkerId))).Order());

        // The scheduler compared them by CID, and nothing by tolerance.
        var log = await network.Services.Single(s => s.Service == "scheduler").WaitForLogAsync($"Job {done.Id}: attempts ");
        Assert.Contains("compared by output CID (kernel revision 1): equal", log);
        Assert.DoesNotContain("compared within the tolerance", log);
    }
}
