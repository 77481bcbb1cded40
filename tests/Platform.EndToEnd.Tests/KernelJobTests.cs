using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Platform.Testing.Kernels;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>The catalogue's kernels as a client runs them: pinned inputs, a job through the gateway, verified outputs.</summary>
public sealed class KernelJobTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    private async Task<Dictionary<string, NpyArray>> RunJobAsync(HttpClient http, string kernel, Dictionary<string, NpyArray> inputs, Dictionary<string, string> parameters, string region = "local")
    {
        var cids = new Dictionary<string, string>();
        foreach (var (name, tensor) in inputs)
            cids[name] = (await http.PinAsync(tensor)).Cid;
        using var submitted = await http.SubmitAsync(new { kernel, inputs = cids, @params = parameters, requirements = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", $"{kernel} job finished");
        Assert.True(done.Status == "completed", $"{kernel} job {done.Status}: {done.Error?.Reason} {done.Error?.Detail}");
        Assert.Equal(1, done.Progress);
        var outputs = new Dictionary<string, NpyArray>();
        foreach (var (name, cid) in done.Outputs!)
            outputs[name] = Npy.Read(await http.GetByteArrayAsync($"/v1/blobs/{cid}"));
        return outputs;
    }

    private static KernelArguments Arguments(string kernel, Dictionary<string, NpyArray> inputs, Dictionary<string, string> parameters)
    {
        var plan = KernelCatalog.Plan(kernel, inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape)), parameters, out var error);
        Assert.Null(error);
        return plan.Arguments;
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{what}[{i}] = {actual[i]}, expected {expected[i]}");
    }

    [Fact]
    public async Task Kmeans_job_on_a_pinned_dataset_returns_the_reference_centroids()
    {
        const int seed = 41;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await network.StartWorkerAsync(network.Operator.Key);
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        // Four tight blobs far apart (k-means++ seeds one in each): one right answer.
        const int n = 4000, d = 16, k = 4;
        var points = new float[n * d];
        for (var i = 0; i < n; i++)
        {
            var blob = random.Next(k);
            for (var j = 0; j < d; j++)
                points[(i * d) + j] = (blob * 10) + (j % (blob + 1)) + (float)(random.NextDouble() - 0.5);
        }
        var inputs = new Dictionary<string, NpyArray> { ["points"] = NpyArray.FromFloat32(points, n, d) };
        var parameters = new Dictionary<string, string> { ["k"] = "4", ["iterations"] = "10", ["seed"] = "5" };

        var result = await RunJobAsync(http, "kmeans", inputs, parameters);

        var expected = ReferenceKernels.Run("kmeans", Arguments("kmeans", inputs, parameters), inputs);
        Assert.Equal(expected["labels"].Int32, result["labels"].Int32);
        AssertClose(expected["centroids"].Float32!, result["centroids"].Float32!, 1e-4, "centroids");
    }

    [Fact]
    public async Task A_worker_without_OpenCL_says_so_and_still_serves_every_kernel()
    {
        const int seed = 42;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var operatorAccount = await network.CreateOperatorAsync();
        // Its own region, so the jobs below can only run on it.
        var worker = await network.StartWorkerAsync(operatorAccount.Key, region: "no-opencl", settings: new() { ["Worker__OpenClLibrary"] = "libOpenCL-not-installed.so.1" });
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);

        var listed = await Eventually.UntilAsync(
            async () => (await http.GetFromJsonAsync<JsonElement>("/v1/workers")).EnumerateArray().FirstOrDefault(w => w.GetProperty("operatorAccountId").GetString() == operatorAccount.AccountId),
            w => w.ValueKind == JsonValueKind.Object, TimeSpan.FromSeconds(60), "the worker is listed");
        await worker.WaitForLogAsync("OpenCL unavailable");
        Assert.Contains(listed.GetProperty("notes").EnumerateArray(), note => note.GetString()!.Contains("OpenCL unavailable", StringComparison.Ordinal));
        Assert.All(listed.GetProperty("devices").EnumerateArray(), device => Assert.Equal("simd", device.GetProperty("backend").GetString()));
        Assert.Equal(KernelCatalog.Names.Order(), listed.GetProperty("backendPerKernel").EnumerateObject().Select(p => p.Name).Order());
        Assert.All(listed.GetProperty("backendPerKernel").EnumerateObject(), p => Assert.Equal("simd", p.Value.GetString()));
        Assert.All(listed.GetProperty("gflopsPerKernel").EnumerateObject(), p => Assert.True(p.Value.GetDouble() > 0, $"{p.Name} calibrated at {p.Value}"));

        float[] F(int count) => Api.RandomFloats(random, count);
        var jobs = new (string Kernel, Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters)[]
        {
            ("vector-add", new() { ["a"] = NpyArray.FromFloat32(F(100), 100), ["b"] = NpyArray.FromFloat32(F(100), 100) }, []),
            ("matmul", new() { ["a"] = NpyArray.FromFloat32(F(12 * 9), 12, 9), ["b"] = NpyArray.FromFloat32(F(9 * 7), 9, 7) }, []),
            ("kmeans", new() { ["points"] = NpyArray.FromFloat32(F(60 * 2), 60, 2) }, new() { ["k"] = "3", ["iterations"] = "4" }),
            ("knn", new() { ["corpus"] = NpyArray.FromFloat32(F(200 * 8), 200, 8), ["queries"] = NpyArray.FromFloat32(F(3 * 8), 3, 8) }, new() { ["k"] = "4", ["metric"] = "l2" }),
            ("train-logreg", new() { ["x"] = NpyArray.FromFloat32(F(50 * 3), 50, 3), ["y"] = NpyArray.FromInt32([.. Enumerable.Range(0, 50).Select(i => i % 2)], 50) }, new() { ["epochs"] = "5" }),
            ("mlp-infer", new()
            {
                ["x"] = NpyArray.FromFloat32(F(6 * 4), 6, 4),
                ["w1"] = NpyArray.FromFloat32(F(4 * 5), 4, 5),
                ["b1"] = NpyArray.FromFloat32(F(5), 5),
                ["w2"] = NpyArray.FromFloat32(F(5 * 2), 5, 2),
                ["b2"] = NpyArray.FromFloat32(F(2), 2),
            }, new() { ["activation"] = "sigmoid" }),
        };
        foreach (var (kernel, inputs, parameters) in jobs)
        {
            var result = await RunJobAsync(http, kernel, inputs, parameters, region: "no-opencl");

            var expected = ReferenceKernels.Run(kernel, Arguments(kernel, inputs, parameters), inputs);
            foreach (var (name, tensor) in expected)
            {
                if (tensor.Float32 is { } values)
                    AssertClose(values, result[name].Float32!, 1e-4, $"{kernel} {name}");
                else
                    Assert.Equal(tensor.Int32, result[name].Int32);
            }
        }
    }

    [Fact]
    public async Task A_long_kernel_reports_progress_and_cancelling_it_frees_the_worker_for_the_next_job()
    {
        const int seed = 43;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var operatorAccount = await network.CreateOperatorAsync();
        var worker = await network.StartWorkerAsync(operatorAccount.Key, region: "long-jobs", settings: new() { ["Worker__ProgressInterval"] = "00:00:00.200" });
        var client = await network.CreateAccountAsync("client", 50_000m);
        using var http = network.Client(client.Key);
        // About 10 TFLOP: minutes on any machine this test runs on, so only a stopped kernel frees the slot in time.
        const int n = 100_000, d = 64;
        var points = await http.PinAsync(NpyArray.FromFloat32(Api.RandomFloats(random, n * d), n, d));
        using var submitted = await http.SubmitAsync(new
        {
            kernel = "kmeans",
            inputs = new { points = points.Cid },
            @params = new { k = 512, iterations = 1000 },
            requirements = new { region = "long-jobs" },
        });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;

        var running = await http.WaitForAsync(job.Id, j => j.Status == "running" && j.Progress > 0, "the running job reports progress");
        Assert.InRange(running.Progress!.Value, 0, 0.5);
        using var cancel = await http.PostAsync(new Uri($"/v1/jobs/{job.Id}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        await http.WaitForAsync(job.Id, j => j.Status == "cancelled", "job cancelled");

        // The worker has one slot: the next job can only run once the cancelled kernel has stopped.
        var next = await RunJobAsync(http, "vector-add", new() { ["a"] = NpyArray.FromFloat32([1, 2], 2), ["b"] = NpyArray.FromFloat32([3, 4], 2) }, [], region: "long-jobs");
        Assert.Equal([4f, 6f], next["c"].Float32!);
        await worker.WaitForLogAsync("stopped: the job was cancelled");
    }
}
