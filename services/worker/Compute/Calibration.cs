using System.Diagnostics;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Compute;

/// <summary>The measured rate of one kernel on one backend.</summary>
public sealed record KernelRate(string Kernel, string Backend, double Gflops);

/// <summary>
/// Brief measurements of every kernel on a backend, on problems big enough to reach steady speed and small
/// enough that calibrating the whole catalogue takes a second or two. The scheduler turns these rates into
/// expected run times, so they must reflect the real kernels, not a synthetic peak.
/// </summary>
public static class Calibration
{
    // Each problem is run once to warm up (JIT, OpenCL compilation), then timed until a repeat budget is spent.
    private static readonly TimeSpan RepeatBudget = TimeSpan.FromMilliseconds(150);

    /// <summary>Rates of every kernel on <paramref name="backend"/>; <paramref name="shrink"/> overrides the problem size divisor (benchmarks).</summary>
    public static IReadOnlyList<KernelRate> Measure(IComputeBackend backend, CancellationToken ct, int? shrink = null)
    {
        var rates = new List<KernelRate>();
        foreach (var (kernel, inputs, parameters) in Problems(shrink ?? (Emulated(backend) ? EmulatorShrink : 1)))
        {
            ct.ThrowIfCancellationRequested();
            var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
            var plan = KernelCatalog.Plan(kernel, infos, parameters, out var error);
            if (error is not null)
                throw new InvalidOperationException($"calibration problem for {kernel} is invalid: {error}");
            var progress = new ComputeProgress(ct);
            KernelRunner.Run(kernel, plan.Arguments, inputs, backend, progress);
            var best = TimeSpan.MaxValue;
            var spent = Stopwatch.StartNew();
            do
            {
                var run = Stopwatch.StartNew();
                KernelRunner.Run(kernel, plan.Arguments, inputs, backend, progress);
                best = TimeSpan.FromTicks(Math.Min(best.Ticks, run.Elapsed.Ticks));
            }
            while (spent.Elapsed < RepeatBudget);
            rates.Add(new KernelRate(kernel, backend.Name, plan.Gflop / Math.Max(best.TotalSeconds, 1e-9)));
        }
        return rates;
    }

    /// <summary>
    /// ILGPU's CPU accelerator is an emulator two to three orders of magnitude slower than the real backends: it
    /// gets problems shrunk by <see cref="EmulatorShrink"/> in their large dimension (matmul 64³ instead of 512³),
    /// so that calibrating it takes seconds, not minutes. Its rates then include more per-launch overhead, which
    /// only makes it look slower still; it never wins a kernel either way.
    /// </summary>
    public const int EmulatorShrink = 32;

    public static bool Emulated(IComputeBackend backend) => backend is Ilgpu.IlgpuBackend { Kind: ILGPU.Runtime.AcceleratorType.CPU };

    private static IEnumerable<(string Kernel, Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters)> Problems(int shrink)
    {
        var random = new Random(20261122);
        yield return (KernelCatalog.VectorAdd, new() { ["a"] = Random(random, (1 << 22) / shrink), ["b"] = Random(random, (1 << 22) / shrink) }, []);
        var side = shrink == 1 ? 512 : 64;
        yield return (KernelCatalog.Matmul, new() { ["a"] = Random(random, side, side), ["b"] = Random(random, side, side) }, []);
        yield return (KernelCatalog.KMeans, new() { ["points"] = Random(random, 32_768 / shrink, 32) }, new() { ["k"] = "16", ["iterations"] = "3" });
        yield return (KernelCatalog.Knn, new() { ["corpus"] = Random(random, 32_768 / shrink, 64), ["queries"] = Random(random, 64, 64) }, new() { ["k"] = "10" });
        var y = new float[16_384 / shrink];
        for (var i = 0; i < y.Length; i++)
            y[i] = random.Next(2);
        yield return (KernelCatalog.TrainLogReg, new() { ["x"] = Random(random, y.Length, 64), ["y"] = NpyArray.FromFloat32(y, y.Length) }, new() { ["epochs"] = "5" });
        yield return (KernelCatalog.MlpInfer, new()
        {
            ["x"] = Random(random, 2048 / shrink, 256),
            ["w1"] = Random(random, 256, 256),
            ["b1"] = Random(random, 256),
            ["w2"] = Random(random, 256, 64),
            ["b2"] = Random(random, 64),
        }, []);
    }

    private static NpyArray Random(Random random, params int[] shape)
    {
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (var i = 0; i < data.Length; i++)
            data[i] = (float)((random.NextDouble() * 2) - 1);
        return NpyArray.FromFloat32(data, shape);
    }
}
