using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Compute;

/// <summary>
/// A known-answer check of a node's own backends, run once at start. A node that announces the reproducible
/// revision has its results compared with other nodes' by output CID alone, so one backend that rounds differently
/// on this machine (a GPU driver that flushes subnormals, a vector path these tests never ran on) would make an honest
/// operator lose every comparison and be penalized. Each catalogue kernel runs on every backend on a small problem
/// whose shapes reach the tails and block edges of every primitive, and its output bytes are compared with
/// <see cref="RuleReference"/>'s, the rules read literally: a backend that differs is not used for that kernel.
/// </summary>
public static class ArithmeticSelfTest
{
    /// <summary>The kernels whose outputs on <paramref name="backend"/> differ from the rules' bytes → which output of which problem.</summary>
    public static IReadOnlyDictionary<string, string> Differences(IComputeBackend backend, CancellationToken ct)
    {
        using var reference = new RuleReference();
        var differences = new Dictionary<string, string>();
        foreach (var (kernel, inputs, parameters) in Problems())
        {
            ct.ThrowIfCancellationRequested();
            var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
            var plan = KernelCatalog.Plan(kernel, infos, parameters, out var error);
            if (error is not null)
                throw new InvalidOperationException($"self-test problem for {kernel} is invalid: {error}");
            var expected = KernelRunner.Run(kernel, plan.Arguments, inputs, reference, new ComputeProgress(ct));
            var actual = KernelRunner.Run(kernel, plan.Arguments, inputs, backend, new ComputeProgress(ct));
            var differing = expected.Keys.Order(StringComparer.Ordinal)
                .FirstOrDefault(name => !actual.TryGetValue(name, out var output) || !Npy.ToBytes(output).AsSpan().SequenceEqual(Npy.ToBytes(expected[name])));
            if (differing is not null)
                differences.TryAdd(kernel, $"output {differing} with {(parameters.Count == 0 ? "default parameters" : string.Join(", ", parameters.Select(p => $"{p.Key}={p.Value}")))}");
        }
        return differences;
    }

    // Shapes off every multiple that matters (16 lanes, the GEMM tiles, SIMD's 256-deep k blocks), small enough that
    // the scalar reference and ILGPU's emulator take milliseconds. Values from a fixed seed, some of them subnormal.
    private static IEnumerable<(string Kernel, Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters)> Problems()
    {
        var random = new Random(20261203);
        yield return (KernelCatalog.VectorAdd, new() { ["a"] = Values(random, 1_000), ["b"] = Values(random, 1_000) }, []);
        yield return (KernelCatalog.Matmul, new() { ["a"] = Values(random, 37, 300), ["b"] = Values(random, 300, 45) }, []);
        yield return (KernelCatalog.KMeans, new() { ["points"] = Values(random, 301, 19) }, new() { ["k"] = "5", ["iterations"] = "2", ["seed"] = "7" });
        yield return (KernelCatalog.Knn, new() { ["corpus"] = Values(random, 203, 21), ["queries"] = Values(random, 7, 21) }, new() { ["k"] = "3" });
        var y = new float[299];
        for (var i = 0; i < y.Length; i++)
            y[i] = random.Next(2);
        yield return (KernelCatalog.TrainLogReg, new() { ["x"] = Values(random, y.Length, 19), ["y"] = NpyArray.FromFloat32(y, y.Length) }, new() { ["epochs"] = "3" });
        foreach (var activation in new[] { "tanh", "sigmoid", "relu" })
        {
            yield return (KernelCatalog.MlpInfer, new()
            {
                ["x"] = Values(random, 33, 40),
                ["w1"] = Values(random, 40, 37),
                ["b1"] = Values(random, 37),
                ["w2"] = Values(random, 37, 9),
                ["b2"] = Values(random, 9),
            }, new() { ["activation"] = activation });
        }
    }

    private static NpyArray Values(Random random, params int[] shape)
    {
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (var i = 0; i < data.Length; i++)
            data[i] = i % 97 == 0 ? 1e-39f * (random.Next(2) * 2 - 1) : (float)((random.NextDouble() * 4) - 2);
        return NpyArray.FromFloat32(data, shape);
    }
}
