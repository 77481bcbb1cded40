using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.Cli.Tests;

/// <summary>The command line against a real network, run in process through its entry point as a user types it.</summary>
public sealed partial class CliEndToEndTests(CliNetwork network, ITestOutputHelper output) : IClassFixture<CliNetwork>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("platform-cli-");

    public void Dispose() => _dir.Delete(recursive: true);

    private sealed record Run(int Code, string Out, string Err);

    private async Task<Run> RunAsync(string key, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = network.Gateway.BaseUrl.ToString(), ["PLATFORM_KEY"] = key, ["HOME"] = _dir.FullName };
        var code = await Cli.RunAsync(args, CliHost.Plain(stdout, stderr, env));
        output.WriteLine($"$ platform {string.Join(' ', args)}\n{stdout}{stderr}(exit {code})\n");
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    [GeneratedRegex(@"^\s*output\s+c\s+(bafkrei[a-z2-7]{52})\s*$", RegexOptions.Multiline)]
    private static partial Regex OutputC();

    [GeneratedRegex(@"^cost\s+([0-9.]+) credits\s*$", RegexOptions.Multiline)]
    private static partial Regex Cost();

    [Fact]
    public async Task Client_pins_runs_vector_add_and_downloads_the_verified_sum_and_sees_what_it_cost()
    {
        const int seed = 17, n = 4096;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var a = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var aPath = Path.Combine(_dir.FullName, "a.npy");
        var bPath = Path.Combine(_dir.FullName, "b.npy");
        await File.WriteAllBytesAsync(aPath, Npy.ToBytes(NpyArray.FromFloat32(a, n)));
        await File.WriteAllBytesAsync(bPath, Npy.ToBytes(NpyArray.FromFloat32(b, n)));
        var client = await network.CreateAccountAsync("client", 100m);

        var put = await RunAsync(client.Key, "blobs", "put", aPath);
        Assert.Equal(0, put.Code);
        Assert.Equal(Cid.Compute(await File.ReadAllBytesAsync(aPath)).Value, put.Out.Trim());

        var submit = await RunAsync(client.Key, "jobs", "submit", "vector-add", "--input", $"a={aPath}", "--input", $"b={bPath}", "--wait");
        Assert.Equal(0, submit.Code);
        Assert.Contains("completed", submit.Out, StringComparison.Ordinal);
        var c = OutputC().Match(submit.Out).Groups[1].Value;
        var cost = decimal.Parse(Cost().Match(submit.Out).Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(cost > 0, "the job cost something");

        var cPath = Path.Combine(_dir.FullName, "c.npy");
        var get = await RunAsync(client.Key, "blobs", "get", c, "-o", cPath);
        Assert.Equal(0, get.Code);
        Assert.Contains($"verified against {c}", get.Out, StringComparison.Ordinal);
        var sum = Npy.Read(await File.ReadAllBytesAsync(cPath)).Float32!;
        Assert.Equal(a.Zip(b, (x, y) => x + y), sum);

        // The account shows the job paid: its balance is at most the credits less the cost (pin fees aside), nothing held.
        var account = await RunAsync(client.Key, "account", "--json");
        Assert.Equal(0, account.Code);
        using var json = JsonDocument.Parse(account.Out);
        var balance = json.RootElement.GetProperty("balance").GetDecimal();
        Assert.True(balance <= 100m - cost, $"balance {balance} after a job that cost {cost}");
        Assert.Equal(0m, json.RootElement.GetProperty("escrowed").GetDecimal());
        var human = await RunAsync(client.Key, "account");
        Assert.Matches($@"balance\s+{Regex.Escape(balance.ToString("0.######", CultureInfo.InvariantCulture))}\b", human.Out);

        // The finished job is listed, and watching it replays its history up to the completion.
        var jobId = Regex.Match(submit.Out, @"\bjob_[a-z0-9]+").Value;
        var list = await RunAsync(client.Key, "jobs", "list");
        Assert.Contains(jobId, list.Out, StringComparison.Ordinal);
        var watch = await RunAsync(client.Key, "jobs", "watch", jobId);
        Assert.Equal(0, watch.Code);
        Assert.Contains("completed", watch.Out.Trim().Split('\n')[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_job_array_from_a_file_runs_every_job_and_the_sdk_follows_it_through_the_real_stream()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        var aPath = Path.Combine(_dir.FullName, "v.npy");
        await File.WriteAllBytesAsync(aPath, Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f], 3)));
        var cid = (await RunAsync(client.Key, "blobs", "put", aPath)).Out.Trim();
        var batchPath = Path.Combine(_dir.FullName, "batch.json");
        await File.WriteAllTextAsync(batchPath, JsonSerializer.Serialize(new
        {
            jobs = Enumerable.Range(0, 5).Select(_ => new { kernel = "vector-add", inputs = new { a = cid, b = cid } }),
        }));

        var submit = await RunAsync(client.Key, "jobs", "submit-batch", batchPath, "--wait");

        Assert.Equal(0, submit.Code);
        var batchId = Regex.Match(submit.Out + submit.Err, @"\bbat_[a-z0-9]+").Value;
        var shown = await RunAsync(client.Key, "jobs", "batch", batchId, "--json");
        using (var json = JsonDocument.Parse(shown.Out))
        {
            Assert.True(json.RootElement.GetProperty("finished").GetBoolean());
            Assert.Equal(5, json.RootElement.GetProperty("counts").GetProperty("completed").GetInt32());
        }

        // The SDK reads the gateway's own batch stream: every job's changes up to its completion, then the end.
        using var sdk = network.Client(client.Key);
        var changes = new List<Platform.Client.JobStatusEvent>();
        await foreach (var change in sdk.WatchBatchAsync(batchId))
            changes.Add(change);
        Assert.Equal(5, changes.Where(c => c.Status == "completed").Select(c => c.JobId).Distinct().Count());
        Assert.Equal(5, changes.Count(c => c.Status == "pending"));
    }

    [Fact]
    public async Task Kernels_lists_the_catalogue_the_network_serves_with_shapes_and_parameter_defaults()
    {
        var client = await network.CreateAccountAsync("client", 1m);

        var human = await RunAsync(client.Key, "kernels");
        var json = await RunAsync(client.Key, "kernels", "--json");

        Assert.Equal(0, human.Code);
        foreach (var kernel in Platform.Contracts.Kernels.KernelCatalog.Definitions)
        {
            var line = human.Out.Split('\n').Single(l => l.TrimStart().StartsWith(kernel.Name + " ", StringComparison.Ordinal));
            Assert.Contains(kernel.Shapes, line, StringComparison.Ordinal);
            Assert.All(kernel.Parameters, p => Assert.Contains($"{p.Name}={p.Default}", line, StringComparison.Ordinal));
        }
        using var served = JsonDocument.Parse(json.Out);
        Assert.Equal(Platform.Contracts.Kernels.KernelCatalog.Names, served.RootElement.EnumerateArray().Select(k => k.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Bad_input_is_one_problem_line_and_a_non_zero_exit()
    {
        var client = await network.CreateAccountAsync("client", 1m);
        var unpinned = Cid.Compute("never pinned"u8).Value;

        var submit = await RunAsync(client.Key, "jobs", "submit", "vector-add", "--input", $"a={unpinned}", "--input", $"b={unpinned}");

        Assert.Equal(Cli.Failed, submit.Code);
        Assert.Equal("", submit.Out);
        Assert.StartsWith("error: Input blob not found: input 'a' refers to", submit.Err, StringComparison.Ordinal);
        Assert.Single(submit.Err.Trim().Split('\n'));

        var unauthorized = await RunAsync("pk_wrong", "account");
        Assert.Equal(Cli.Failed, unauthorized.Code);
        Assert.Contains("PLATFORM_KEY", unauthorized.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_jobs_receipt_verifies_offline_with_its_output_and_fails_once_a_byte_is_changed()
    {
        const int seed = 29, n = 512;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var aPath = Path.Combine(_dir.FullName, "a.npy");
        var bPath = Path.Combine(_dir.FullName, "b.npy");
        await File.WriteAllBytesAsync(aPath, Npy.ToBytes(NpyArray.FromFloat32(Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray(), n)));
        await File.WriteAllBytesAsync(bPath, Npy.ToBytes(NpyArray.FromFloat32(Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray(), n)));
        var client = await network.CreateAccountAsync("client", 100m);
        var submit = await RunAsync(client.Key, "jobs", "submit", "vector-add", "--input", $"a={aPath}", "--input", $"b={bPath}", "--wait");
        Assert.Equal(0, submit.Code);
        var jobId = Regex.Match(submit.Out, @"\bjob_[a-z0-9]+").Value;
        var outputs = Directory.CreateDirectory(Path.Combine(_dir.FullName, "outputs"));
        Assert.Equal(0, (await RunAsync(client.Key, "blobs", "get", OutputC().Match(submit.Out).Groups[1].Value, "-o", Path.Combine(outputs.FullName, "c.npy"))).Code);
        var receipt = Path.Combine(_dir.FullName, "receipt.json");

        var fetched = await RunAsync(client.Key, "jobs", "receipt", jobId, "-o", receipt);
        Assert.Equal(0, fetched.Code);
        using var anonymous = network.Client(null);
        var platformKey = (await anonymous.GetReceiptKeyAsync()).PublicKey;

        // Offline: no key, and a gateway URL nothing answers on.
        var verify = await RunAsync("", "verify", receipt, "--platform-key", platformKey, "--outputs", outputs.FullName, "--url", "http://127.0.0.1:9");
        Assert.Equal(0, verify.Code);
        Assert.Contains($"verified: receipt of {jobId}", verify.Out, StringComparison.Ordinal);
        Assert.Contains("ok    output c: local file matches", verify.Out, StringComparison.Ordinal);

        var bytes = await File.ReadAllBytesAsync(receipt);
        bytes[bytes.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(receipt, bytes);
        var tampered = await RunAsync("", "verify", receipt);
        Assert.Equal(Cli.Failed, tampered.Code);
        Assert.Contains("FAIL", tampered.Err, StringComparison.Ordinal);
        Assert.Contains("NOT verified", tampered.Out, StringComparison.Ordinal);

        Assert.Equal(Cli.Usage, (await RunAsync("", "verify", Path.Combine(_dir.FullName, "missing.json"))).Code);
    }
}
