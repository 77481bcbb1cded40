using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// A node's memory (issue 20): its RSS at rest, after 2,000 tiny jobs and after a large one, and how long it takes to
/// come back under the target (150 MiB) once the work is done, polled every second for a minute. Beside it, in the same
/// run, the storage service at rest: the same .NET host (ASP.NET Core, MassTransit, OpenTelemetry) without compute,
/// the floor a node cannot go below. Where the node's memory goes is split by what Linux and the runtime report:
/// anonymous memory (the GC heap and native allocations) and file-backed pages (code, the OpenCL runtime's libraries).
/// </summary>
public static class NodeMemoryBenchmark
{
    private const double TargetMib = 150;
    private const int TinyJobs = 2000;
    private const int MatmulSize = 2048;
    private static readonly TimeSpan Settle = TimeSpan.FromMinutes(1);

    private sealed record Pinned(string Cid);

    public static async Task RunAsync()
    {
        Console.WriteLine("== node memory: RSS at rest, after 2,000 tiny jobs and after a large one (target <= 150 MiB, back within a minute)");
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench_node");
        await using var network = await BenchNetwork.StartAsync(env, workers: 1, slots: 2, clients: 1, BenchNetwork.RaisedLimits);
        var worker = network.Services.Single(s => Path.GetFileName(s.LogPath).StartsWith("worker", StringComparison.Ordinal));
        var storage = network.Services.Single(s => Path.GetFileName(s.LogPath).StartsWith("storage", StringComparison.Ordinal));
        var http = network.Clients[0];

        // At rest: enrolled, calibrated and online, then a quiet while.
        await Eventually.UntilAsync(async () => (await http.GetStringAsync(new Uri("/v1/workers", UriKind.Relative))).Contains("\"online\":true", StringComparison.Ordinal),
            TimeSpan.FromMinutes(2), "the node online");
        await Task.Delay(TimeSpan.FromSeconds(15));
        var floor = await Report("storage at rest (the same host, no compute)", storage);
        var rest = await Report("node at rest", worker);

        // 2,000 tiny jobs, in arrays of 500.
        var total = 0;
        for (var i = 0; i < TinyJobs / 500; i++)
        {
            using var response = await http.PostAsJsonAsync(new Uri("/v1/jobs:batch", UriKind.Relative), new { jobs = Enumerable.Repeat(network.VectorAddJob(), 500) });
            response.EnsureSuccessStatusCode();
            total += 500;
        }
        var tinySampler = new ProcessMemory.RssSampler(worker.ProcessId);
        await network.WaitCompletedAsync(total);
        var tinyPeak = await tinySampler.StopAsync() / 1024.0;
        var afterTiny = await Report($"node after {TinyJobs} tiny jobs (peak {tinyPeak:F0} MiB)", worker);
        var tinyBack = await SettleAsync(worker);

        // One large job: a 2048x2048 matmul (two 16 MiB inputs, a 16 MiB output), as the compute benchmark's sizes.
        var random = new Random(20);
        Console.WriteLine($"seed 20: matmul {MatmulSize}x{MatmulSize}");
        var a = await PinAsync(http, RandomMatrix(random));
        var b = await PinAsync(http, RandomMatrix(random));
        var largeSampler = new ProcessMemory.RssSampler(worker.ProcessId);
        using (var response = await http.PostAsJsonAsync(new Uri("/v1/jobs", UriKind.Relative), new { kernel = "matmul", inputs = new { a, b } }))
            response.EnsureSuccessStatusCode();
        await network.WaitCompletedAsync(total + 1);
        var largePeak = await largeSampler.StopAsync() / 1024.0;
        var afterLarge = await Report($"node after a {MatmulSize}x{MatmulSize} matmul (peak {largePeak:F0} MiB)", worker);
        // Profiling aid: PLATFORM_BENCH_GCDUMP=FILE takes a heap dump of the node once it has trimmed after the job
        // (dotnet-gcdump on the PATH); `dotnet-gcdump report FILE` lists what holds the heap.
        if (Environment.GetEnvironmentVariable("PLATFORM_BENCH_GCDUMP") is { Length: > 0 } dump)
        {
            await Task.Delay(TimeSpan.FromSeconds(8));
            using var gcdump = Process.Start("dotnet-gcdump", ["collect", "-p", worker.ProcessId.ToString(CultureInfo.InvariantCulture), "-o", dump])!;
            await gcdump.WaitForExitAsync();
        }
        var largeBack = await SettleAsync(worker);

        Console.WriteLine();
        Console.WriteLine($"| state | node RSS | ratio to the host floor ({floor.RssMib:F0} MiB) | target {TargetMib:F0} MiB |");
        Console.WriteLine("|---|---|---|---|");
        Row("at rest", rest.RssMib, floor.RssMib, rest.RssMib <= TargetMib ? "met" : "missed");
        Row($"right after {TinyJobs} tiny jobs", afterTiny.RssMib, floor.RssMib, "");
        Row("a minute after them", tinyBack.RssMib, floor.RssMib, Verdict(tinyBack));
        Row("right after the large job", afterLarge.RssMib, floor.RssMib, "");
        Row("a minute after it", largeBack.RssMib, floor.RssMib, Verdict(largeBack));
    }

    private static string Verdict((double RssMib, TimeSpan? Under) back) =>
        back.Under is { } under ? $"met (under it after {under.TotalSeconds:F0} s)" : "missed";

    private static void Row(string state, double mib, double floor, string verdict) =>
        Console.WriteLine($"| {state} | {mib:F0} MiB | {mib / floor:F2} | {verdict} |");

    private sealed record Memory(double RssMib);

    /// <summary>Prints where the process's memory is: RSS split into anonymous and file-backed, and the GC's heap and commit.</summary>
    private static async Task<Memory> Report(string what, ServiceProcess process)
    {
        var rss = ProcessMemory.StatusKb(process.ProcessId, "VmRSS") / 1024.0;
        var anon = ProcessMemory.StatusKb(process.ProcessId, "RssAnon") / 1024.0;
        var file = ProcessMemory.StatusKb(process.ProcessId, "RssFile") / 1024.0;
        using var scraper = new HttpClient();
        var metrics = await scraper.GetStringAsync(new Uri(process.BaseUrl, "/metrics"));
        var heap = Sum(metrics, "dotnet_gc_last_collection_heap_size_bytes") / 1048576;
        var committed = Sum(metrics, "dotnet_gc_last_collection_memory_committed_size_bytes") / 1048576;
        Console.WriteLine($"{what}: RSS {rss:F0} MiB (anonymous {anon:F0}, file-backed {file:F0}); GC heap {heap:F0} MiB, GC committed {committed:F0} MiB");
        return new Memory(rss);
    }

    /// <summary>RSS polled every second for a minute: the last value, and when it first came under the target.</summary>
    private static async Task<(double RssMib, TimeSpan? Under)> SettleAsync(ServiceProcess process)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan? under = null;
        double rss;
        do
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            rss = ProcessMemory.StatusKb(process.ProcessId, "VmRSS") / 1024.0;
            if (rss <= TargetMib)
                under ??= clock.Elapsed;
        }
        while (clock.Elapsed < Settle);
        await Report("  a minute later", process);
        return (rss, under);
    }

    private static double Sum(string metrics, string name) =>
        metrics.Split('\n').Where(l => l.StartsWith(name, StringComparison.Ordinal) && (l.Length == name.Length || l[name.Length] is '{' or ' '))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    private static NpyArray RandomMatrix(Random random)
    {
        var values = new float[MatmulSize * MatmulSize];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)(random.NextDouble() * 2 - 1);
        return NpyArray.FromFloat32(values, MatmulSize, MatmulSize);
    }

    private static async Task<string> PinAsync(HttpClient http, NpyArray array)
    {
        using var content = new ByteArrayContent(Npy.ToBytes(array));
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Pinned>())!.Cid;
    }
}
