using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// Pin and verified read of a 1 GiB blob through the storage service's public HTTP API (storage as a real
/// process on real Postgres and RabbitMQ), beside command-line tools doing the same disk and hashing work in
/// the same run on the same filesystem: a pin hashes the bytes and writes them durably (sha256sum + cp + sync),
/// a verified read hashes the stored copy and moves it once (sha256sum + cp). Targets: pin at least 0.8x its
/// baseline, verified read at least 0.9x, and the storage process under 200 MiB of RSS throughout.
/// </summary>
public static class StorageBenchmark
{
    private const long BlobBytes = 1L << 30;
    private const int Runs = 3;
    private const int BufferBytes = 1 << 20;
    private const double PinTarget = 0.8, ReadTarget = 0.9, RssTargetMib = 200;

    private sealed record Pinned(string Cid, long Size, string Sha256);

    public static async Task RunAsync()
    {
        Console.WriteLine("== storage: a 1 GiB blob pinned and read over HTTP beside sha256sum/openssl + cp in the same run ==");
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench_storage");
        // The storage root lives in this folder too, so the baselines and the service use the same filesystem.
        var work = Directory.CreateTempSubdirectory("platform-bench-storage-");
        try
        {
            await RunInAsync(env, work.FullName);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static async Task RunInAsync(TestEnvironment env, string work)
    {
        // Source, baseline copy, stored blob, the pin's temp file and the received copy exist at the same time.
        var free = new DriveInfo(work).AvailableFreeSpace;
        if (free < 6 * BlobBytes)
            throw new InvalidOperationException($"{work} has {free >> 30} GiB free; the storage benchmark needs 6 GiB");

        var source = Path.Combine(work, "source.bin");
        var copy = Path.Combine(work, "copy.bin");
        var readCopy = Path.Combine(work, "read-copy.bin");
        var received = Path.Combine(work, "received.bin");
        await WriteRandomFileAsync(source);
        var cache = await DescribePageCacheAsync(source);
        Console.WriteLine($"page cache: {cache.Description}");
        var openssl = File.Exists("/usr/bin/openssl");

        await using var storage = await ServiceProcess.StartAsync("storage", env, new Dictionary<string, string?>
        {
            ["Storage__RootPath"] = Path.Combine(work, "storage"),
            ["Storage__MaxBlobBytes"] = (2 * BlobBytes).ToString(CultureInfo.InvariantCulture),
        });
        using var http = new HttpClient { BaseAddress = storage.BaseUrl, Timeout = TimeSpan.FromMinutes(10) };
        var startRss = ProcessMemory.StatusKb(storage.ProcessId, "VmRSS");

        // Baselines and service runs alternate, so drift on a shared machine affects both alike. Each step starts
        // from the same cache state (see Settle); the second step of a pair reads what the first left in the cache,
        // as the service's own second pass (serving what it just hashed) does.
        var times = new Dictionary<string, List<double>>();
        void Record(string step, double seconds) => (times.TryGetValue(step, out var list) ? list : times[step] = []).Add(seconds);

        Pinned? pinned = null;
        var pinSampler = new ProcessMemory.RssSampler(storage.ProcessId);
        for (var run = 0; run < Runs; run++)
        {
            await SettleAsync(cache.CanDrop);
            var (seconds, hash) = await HashAsync("sha256sum", source);
            Record("sha256sum source", seconds);
            File.Delete(copy);
            Record("cp source", (await RunAsync("cp", source, copy)).Seconds + (await RunAsync("sync", copy)).Seconds);
            if (openssl)
            {
                await SettleAsync(cache.CanDrop);
                var (opensslSeconds, opensslHash) = await HashAsync("openssl", source);
                Record("openssl source", opensslSeconds);
                Expect(opensslHash, hash, "openssl and sha256sum disagree");
            }
            await SettleAsync(cache.CanDrop);
            var (storageCpu, clientCpu) = (CpuSeconds(storage.ProcessId), ClientCpuSeconds());
            (seconds, pinned) = await PinAsync(http, source);
            Record("pin", seconds);
            Record("pin cpu storage", CpuSeconds(storage.ProcessId) - storageCpu);
            Record("pin cpu client", ClientCpuSeconds() - clientCpu);
            Expect(pinned.Sha256, hash, "the pin's sha256 is not the file's");
            Expect(pinned.Size.ToString(CultureInfo.InvariantCulture), BlobBytes.ToString(CultureInfo.InvariantCulture), "the pin's size is wrong");
        }
        var pinPeak = await pinSampler.StopAsync();
        var blob = pinned ?? throw new InvalidOperationException("nothing was pinned");

        var readSampler = new ProcessMemory.RssSampler(storage.ProcessId);
        for (var run = 0; run < Runs; run++)
        {
            // The baseline's synced copy stands for the stored blob: same bytes, same filesystem, written the same
            // way, and found without knowing how the service lays out its files.
            await SettleAsync(cache.CanDrop);
            Record("sha256sum copy", (await HashAsync("sha256sum", copy)).Seconds);
            // No sync: a client receiving a blob does not fsync it, and neither does the read below.
            Record("cp copy", (await RunAsync("cp", copy, readCopy)).Seconds);
            File.Delete(readCopy);
            if (openssl)
            {
                await SettleAsync(cache.CanDrop);
                Record("openssl copy", (await HashAsync("openssl", copy)).Seconds);
            }
            await SettleAsync(cache.CanDrop);
            File.Delete(received);
            var (storageCpu, clientCpu) = (CpuSeconds(storage.ProcessId), ClientCpuSeconds());
            Record("read", await ReadAsync(http, blob.Cid, received));
            Record("read cpu storage", CpuSeconds(storage.ProcessId) - storageCpu);
            Record("read cpu client", ClientCpuSeconds() - clientCpu);
        }
        var readPeak = await readSampler.StopAsync();
        var hwm = ProcessMemory.StatusKb(storage.ProcessId, "VmHWM");
        var receivedHash = Convert.ToHexStringLower(await HashFileAsync(received));
        Expect(receivedHash, blob.Sha256, "the bytes read back are not the bytes pinned");

        Console.WriteLine($"{"step (best of " + Runs + ", MB = 10^6 bytes)",-58} {"seconds",8} {"MB/s",7}   runs (s)");
        Row("sha256sum SOURCE (coreutils' own SHA-256, no SHA-NI)", times["sha256sum source"]);
        if (openssl)
            Row("openssl dgst -sha256 SOURCE (SHA-NI)", times["openssl source"]);
        Row("cp SOURCE COPY && sync COPY", times["cp source"]);
        var pinBaseline = Row("pin baseline: sha256sum + cp/sync", Sum(times["sha256sum source"], times["cp source"]));
        var pinStrong = openssl ? Row("pin baseline: openssl + cp/sync", Sum(times["openssl source"], times["cp source"])) : double.NaN;
        var pin = Row("pin: POST streamed from a FileStream, until 201", times["pin"]);
        Row("sha256sum COPY", times["sha256sum copy"]);
        if (openssl)
            Row("openssl dgst -sha256 COPY", times["openssl copy"]);
        Row("cp COPY NEW (a hashed read moves the bytes once)", times["cp copy"]);
        var readBaseline = Row("read baseline: sha256sum + cp", Sum(times["sha256sum copy"], times["cp copy"]));
        var readStrong = openssl ? Row("read baseline: openssl + cp", Sum(times["openssl copy"], times["cp copy"])) : double.NaN;
        var read = Row("verified read: GET streamed to a file, until the end", times["read"]);

        Console.WriteLine($"pin vs baseline:  {Ratios(pinBaseline, pinStrong, pin, PinTarget)}");
        Console.WriteLine($"read vs baseline: {Ratios(readBaseline, readStrong, read, ReadTarget)}");
        string Cpu(string step) => string.Join(" ", times[step].Select(c => c.ToString("F2", CultureInfo.InvariantCulture)));
        Console.WriteLine($"CPU seconds per run (2 cores give 2 s a second): pin: storage {Cpu("pin cpu storage")}, client {Cpu("pin cpu client")}; "
            + $"read: storage {Cpu("read cpu storage")}, client {Cpu("read cpu client")}");
        var peak = Math.Max(pinPeak, readPeak) / 1024.0;
        Console.WriteLine($"storage RSS: {startRss / 1024.0:F0} MiB after start, peak {pinPeak / 1024.0:F0} MiB during pins, {readPeak / 1024.0:F0} MiB during reads "
            + $"(sampled every 50 ms), VmHWM {hwm / 1024.0:F0} MiB (target < {RssTargetMib:F0} MiB: {Met(Math.Max(peak, hwm / 1024.0) < RssTargetMib)})");
    }

    /// <summary>Prints one step and returns its best time in seconds.</summary>
    private static double Row(string step, List<double> runs)
    {
        var best = runs.Min();
        Console.WriteLine($"  {step,-56} {best,8:F3} {BlobBytes / best / 1e6,7:F0}   {string.Join(" ", runs.Select(s => s.ToString("F2", CultureInfo.InvariantCulture)))}");
        return best;
    }

    // A baseline pair's runs are added run by run, so each sum is one real sequence of the two steps.
    private static List<double> Sum(List<double> first, List<double> second) => [.. first.Zip(second, (a, b) => a + b)];

    // The ratio is the baseline's time over ours: above 1 is faster than the baseline.
    private static string Ratios(double baseline, double strongBaseline, double ours, double target)
    {
        var text = $"{baseline / ours:F2}x with sha256sum ({Met(baseline / ours >= target)})";
        if (!double.IsNaN(strongBaseline))
            text += $", {strongBaseline / ours:F2}x with openssl ({Met(strongBaseline / ours >= target)})";
        return text + $"; target >= {target:F2}x";
    }

    private static string Met(bool met) => met ? "met" : "not met";

    private static void Expect(string actual, string expected, string what)
    {
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"{what}: {actual} != {expected}");
    }

    private static async Task WriteRandomFileAsync(string path)
    {
        // A fixed seed: every run pins the same bytes. Random bytes, so nothing on the way can compress them.
        var random = new Random(42);
        var buffer = new byte[BufferBytes];
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
        for (long written = 0; written < BlobBytes; written += buffer.Length)
        {
            random.NextBytes(buffer);
            await file.WriteAsync(buffer);
        }
        file.Flush(flushToDisk: true);
    }

    private sealed record PageCache(bool CanDrop, string Description);

    /// <summary>Tries dropping the page cache once and checks with fincore that the source really left it.</summary>
    private static async Task<PageCache> DescribePageCacheAsync(string source)
    {
        if (!TryDropCaches(out var failure))
            return new PageCache(false, $"cannot be dropped ({failure}): every step runs with its files hot in cache");
        string resident;
        try
        {
            var (_, output) = await RunAsync("fincore", "--bytes", "--noheadings", "--output", "RES", source);
            resident = $"{long.Parse(output.Trim(), CultureInfo.InvariantCulture) >> 20} MiB of the 1 GiB source resident after a drop";
        }
        catch (Win32Exception)
        {
            resident = "fincore is missing, so the drop is not verified";
        }
        return new PageCache(true, $"dropped before every step (sync; echo 3 > /proc/sys/vm/drop_caches): {resident}. "
            + "Steps start cold in this VM's cache; the host may still cache the virtual disk.");
    }

    /// <summary>
    /// Writes dirty pages out before the next step, so one step's writeback is not charged to the next, and
    /// drops the page cache when allowed, so every step reads its input from disk.
    /// </summary>
    private static async Task SettleAsync(bool drop)
    {
        await RunAsync("sync");
        if (drop && !TryDropCaches(out var failure))
            throw new InvalidOperationException($"dropping the page cache worked once and then failed: {failure}");
    }

    private static bool TryDropCaches(out string? failure)
    {
        failure = null;
        try
        {
            // Only clean pages are dropped; callers sync first.
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            failure = ex.Message;
            return false;
        }
    }

    private static async Task<(double Seconds, string Hash)> HashAsync(string tool, string path)
    {
        // openssl's -r prints "<hex> *<path>", sha256sum "<hex>  <path>": the hex digest comes first in both.
        var (seconds, output) = tool == "openssl" ? await RunAsync("openssl", "dgst", "-sha256", "-r", path) : await RunAsync("sha256sum", path);
        return (seconds, output.Split(' ', 2)[0]);
    }

    private static async Task<(double Seconds, string Output)> RunAsync(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var seconds = watch.Elapsed.TotalSeconds;
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited with {process.ExitCode}: {await errors}");
        return (seconds, await output);
    }

    /// <summary>CPU seconds a process has used (user + system, from /proc/PID/stat, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static double ClientCpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    private static async Task<(double Seconds, Pinned Pinned)> PinAsync(HttpClient http, string source)
    {
        var watch = Stopwatch.StartNew();
        // No FileStream buffer (StreamContent already reads 1 MiB at a time) and no copy of the body in memory:
        // a seekable stream gives StreamContent a Content-Length, so the body is streamed as it is read.
        await using var file = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        using var content = new StreamContent(file, BufferBytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content);
        if (response.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"the pin answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var pinned = await response.Content.ReadFromJsonAsync<Pinned>() ?? throw new InvalidOperationException("the pin answered no body");
        return (watch.Elapsed.TotalSeconds, pinned);
    }

    private static async Task<double> ReadAsync(HttpClient http, string cid, string target)
    {
        var watch = Stopwatch.StartNew();
        using var response = await http.GetAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using (var body = await response.Content.ReadAsStreamAsync())
        await using (var file = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
            await body.CopyToAsync(file, BufferBytes);
        var seconds = watch.Elapsed.TotalSeconds;
        var length = new FileInfo(target).Length;
        if (length != BlobBytes)
            throw new InvalidOperationException($"the read returned {length} bytes, not {BlobBytes}");
        return seconds;
    }

    private static async Task<byte[]> HashFileAsync(string path)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await SHA256.HashDataAsync(file);
    }
}
