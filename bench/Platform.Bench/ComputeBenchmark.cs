using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using System.Text.Json;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Platform.Testing.Kernels;
using Platform.Worker.Compute;
using Platform.Worker.Compute.Ilgpu;
using Platform.Worker.Compute.OpenCl;
using Platform.Worker.Compute.Simd;

namespace Platform.Bench;

/// <summary>
/// The worker's kernels on each backend beside numpy (OpenBLAS) doing the same work in the same run, and the
/// machine's theoretical fp32 peak. Targets (issue 4): SIMD matmul at least 0.6x OpenBLAS, OpenCL at least
/// 0.4x; kmeans and knn at least as fast as numpy.
/// </summary>
public static class ComputeBenchmark
{
    private const int MatmulN = 2048;
    private const int KMeansN = 200_000, KMeansD = 32, KMeansK = 64, KMeansIterations = 10;
    private const int KnnN = 200_000, KnnQ = 256, KnnD = 128, KnnK = 10;

    public static void Run()
    {
        Console.WriteLine("== compute: kernels per backend beside numpy/OpenBLAS in the same run ==");
        var peak = TheoreticalPeakGflops(out var peakHow);
        Console.WriteLine($"fp32 theoretical peak: {peak:F0} GFLOP/s ({peakHow})");

        var numpy = RunNumpy();
        Console.WriteLine($"numpy {numpy["numpy"].GetProperty("version")} with {numpy["numpy"].GetProperty("blas")}");
        var baseline = new Dictionary<string, double>
        {
            ["matmul"] = numpy["matmul"].GetProperty("seconds").GetDouble(),
            ["kmeans"] = numpy["kmeans"].GetProperty("seconds").GetDouble(),
            ["knn"] = numpy["knn"].GetProperty("seconds").GetDouble(),
        };

        var cache = Path.Combine(Path.GetTempPath(), "platform-bench-kernels");
        Directory.CreateDirectory(cache);
        var backends = new List<IComputeBackend> { new SimdBackend() };
        if (OpenClBackend.TryCreate("libOpenCL.so.1", cache, out var reason) is { } openCl)
            backends.Add(openCl);
        else
            Console.WriteLine($"OpenCL unavailable: {reason}");

        var random = new Random(1);
        var problems = new (string Kernel, Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters, int Repeats)[]
        {
            ("matmul", new() { ["a"] = RandomTensors.Uniform(random, MatmulN, MatmulN), ["b"] = RandomTensors.Uniform(random, MatmulN, MatmulN) }, [], 5),
            ("kmeans", new() { ["points"] = RandomTensors.Uniform(random, KMeansN, KMeansD) },
                new() { ["k"] = Text(KMeansK), ["iterations"] = Text(KMeansIterations) }, 3),
            ("knn", new() { ["corpus"] = RandomTensors.Uniform(random, KnnN, KnnD), ["queries"] = RandomTensors.Uniform(random, KnnQ, KnnD) },
                new() { ["k"] = Text(KnnK), ["metric"] = "cosine" }, 3),
        };

        Console.WriteLine($"{"kernel",-8} {"backend",-8} {"seconds",9} {"GFLOP/s",9} {"numpy s",9} {"vs numpy",9} {"of peak",8}");
        foreach (var (kernel, inputs, parameters, repeats) in problems)
        {
            var plan = KernelCatalog.Plan(kernel, inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape)), parameters, out var error);
            if (error is not null)
                throw new InvalidOperationException(error);
            var numpyGflops = plan.Gflop / baseline[kernel];
            Console.WriteLine($"{kernel,-8} {"numpy",-8} {baseline[kernel],9:F3} {numpyGflops,9:F1} {baseline[kernel],9:F3} {1.0,9:F2} {numpyGflops / peak,8:P0}");
            foreach (var backend in backends)
            {
                var seconds = BestOf(repeats, () => KernelRunner.Run(kernel, plan.Arguments, inputs, backend, ComputeProgress.None));
                var gflops = plan.Gflop / seconds;
                // "vs numpy" is numpy's time over ours: above 1 means faster than numpy.
                Console.WriteLine($"{kernel,-8} {backend.Name,-8} {seconds,9:F3} {gflops,9:F1} {baseline[kernel],9:F3} {baseline[kernel] / seconds,9:F2} {gflops / peak,8:P0}");
            }
        }

        // What a worker's start-up calibration measures on the same machine, and the backend it would choose.
        var rates = backends.SelectMany(b => Calibration.Measure(b, CancellationToken.None)).ToList();
        Console.WriteLine($"calibration (GFLOP/s): {string.Join("; ", rates.GroupBy(r => r.Kernel).Select(g =>
            $"{g.Key} {string.Join(" ", g.Select(r => $"{r.Backend} {r.Gflops:F1}"))} -> {g.MaxBy(r => r.Gflops)!.Backend}"))}");

        IlgpuRows(backends);
        foreach (var backend in backends)
            backend.Dispose();
    }

    /// <summary>
    /// ILGPU on its best accelerator here (its CPU emulator on a machine without CUDA) beside the other backends,
    /// all on the emulator's calibration problems (1/32 of the normal ones), so the emulator finishes in seconds.
    /// </summary>
    private static void IlgpuRows(List<IComputeBackend> backends)
    {
        var notes = new List<string>();
        using var ilgpu = IlgpuBackend.TryOpen(allowCpu: true, "libOpenCL.so.1", notes);
        foreach (var note in notes)
            Console.WriteLine(note);
        if (ilgpu is null)
            return;
        Console.WriteLine($"ilgpu on {ilgpu.Device.Name}; every backend on the emulator's calibration problems (1/{Calibration.EmulatorShrink}: " +
            $"vector-add {(1 << 22) / Calibration.EmulatorShrink}, matmul 64x64x64, kmeans {32_768 / Calibration.EmulatorShrink}x32 k=16 3 iterations, " +
            $"knn {32_768 / Calibration.EmulatorShrink}x64 with 64 queries, train-logreg {16_384 / Calibration.EmulatorShrink}x64 5 epochs, mlp-infer {2048 / Calibration.EmulatorShrink}x256-256-64)");
        var all = backends.Append(ilgpu).ToList();
        var rates = all.SelectMany(b => Calibration.Measure(b, CancellationToken.None, Calibration.EmulatorShrink)).ToList();
        Console.WriteLine($"{"kernel",-13} {string.Join(" ", all.Select(b => $"{b.Name + " GFLOP/s",16}"))}");
        foreach (var kernel in KernelCatalog.Names)
            Console.WriteLine($"{kernel,-13} {string.Join(" ", all.Select(b => $"{rates.Single(r => r.Kernel == kernel && r.Backend == b.Name).Gflops,16:F3}"))}");
    }

    private static double BestOf(int repeats, Action run)
    {
        run();
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            run();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }

    private static Dictionary<string, JsonElement> RunNumpy()
    {
        var script = Path.Combine(RepoRoot.Find(), "bench", "baselines", "numpy_compute.py");
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var value in new[] { MatmulN, KMeansN, KMeansD, KMeansK, KMeansIterations, KnnN, KnnQ, KnnD, KnnK })
            start.ArgumentList.Add(Text(value));
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"the numpy baseline failed (is python3-numpy installed? ./platform bench installs it): {errors}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(e => e.GetProperty("name").GetString()!);
    }

    /// <summary>
    /// Cores x clock x FLOP per cycle. The clock is measured (a chain of dependent adds retires one per
    /// cycle), since turbo clocks are far above the nominal one; FLOP per cycle assumes two FMA pipes of
    /// 256 bits (32 fp32 FLOP), which is what current x86 cores sustain with AVX2 or AVX-512.
    /// </summary>
    private static double TheoreticalPeakGflops(out string how)
    {
        var ghz = Enumerable.Range(0, 5).Max(_ => MeasureGhz());
        var flopPerCycle = Vector256.IsHardwareAccelerated ? 32 : 8;
        how = $"{Environment.ProcessorCount} cores x {ghz:F2} GHz measured x {flopPerCycle} FLOP/cycle";
        return Environment.ProcessorCount * ghz * flopPerCycle;
    }

    private static double MeasureGhz()
    {
        const long iterations = 50_000_000;
        var watch = Stopwatch.StartNew();
        var x = DependentChain(iterations);
        var seconds = watch.Elapsed.TotalSeconds;
        GC.KeepAlive(x);
        return iterations * 8 / seconds / 1e9;
    }

    // Eight one-cycle operations, each needing the previous one's result: eight cycles per iteration, with the
    // loop's own counting running alongside.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long DependentChain(long iterations)
    {
        long x = 0;
        for (long i = 0; i < iterations; i++)
        {
            x += i;
            x ^= i;
            x += i;
            x ^= i;
            x += i;
            x ^= i;
            x += i;
            x ^= i;
        }
        return x;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
