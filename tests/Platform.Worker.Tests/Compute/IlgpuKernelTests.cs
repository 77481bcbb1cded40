using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Platform.Worker.Compute.Ilgpu;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>ILGPU's CPU accelerator with one and with two simulated multiprocessors (groups run at once), opened once.</summary>
public sealed class IlgpuCpuBackends : IDisposable
{
    private readonly Dictionary<int, IlgpuBackend> _byMultiprocessors = new() { [1] = IlgpuBackend.CreateCpu(1), [2] = IlgpuBackend.CreateCpu(2) };

    public IlgpuBackend this[int multiprocessors] => _byMultiprocessors[multiprocessors];

    public void Dispose()
    {
        foreach (var backend in _byMultiprocessors.Values)
            backend.Dispose();
    }
}

/// <summary>
/// Every primitive and every catalogue kernel on ILGPU's CPU accelerator, with 1 and 2 multiprocessors, gives the
/// same bytes as <see cref="RuleReference"/> (the rules of docs/KERNELS.md read literally) on random shapes from printed seeds,
/// edge shapes included (1x1, sizes that are not multiples of the tiles, k = 0, several 4096-row chunks).
/// </summary>
public sealed class IlgpuKernelTests(IlgpuCpuBackends backends, ITestOutputHelper output) : IClassFixture<IlgpuCpuBackends>
{
    private readonly RuleReference _rules = new();

    public static TheoryData<int> Multiprocessors => [1, 2];

    private Random Seeded(int seed)
    {
        output.WriteLine($"seed {seed}");
        return new Random(seed);
    }

    private static float[] Values(Random random, int count)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
            values[i] = (float)((random.NextDouble() * 2) - 1);
        return values;
    }

    internal static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}), the rules give {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
        }
    }

    [Theory]
    [MemberData(nameof(Multiprocessors))]
    public void Add_is_byte_identical_to_the_rules(int multiprocessors)
    {
        var random = Seeded(1701);
        foreach (var n in new[] { 1, 2, 255, 257, 10_000 })
        {
            float[] a = Values(random, n), b = Values(random, n), expected = new float[n], actual = new float[n];
            _rules.Add(a, b, expected);
            backends[multiprocessors].Add(a, b, actual);
            AssertSameBits(expected, actual, $"add n={n}");
        }
    }

    [Theory]
    [MemberData(nameof(Multiprocessors))]
    public void Gemm_is_byte_identical_to_the_rules_for_both_layouts_and_edge_shapes(int multiprocessors)
    {
        var random = Seeded(1702);
        var shapes = new List<(int M, int K, int N)> { (1, 1, 1), (3, 0, 2), (1, 17, 1), (64, 16, 64), (65, 17, 63), (70, 33, 130), (5, 100, 1), (1, 40, 70) };
        for (var i = 0; i < 4; i++)
            shapes.Add((random.Next(1, 150), random.Next(1, 90), random.Next(1, 150)));
        foreach (var (m, k, n) in shapes)
        {
            foreach (var transposeB in new[] { false, true })
            {
                float[] a = Values(random, m * k), b = Values(random, k * n), expected = new float[m * n], actual = new float[m * n];
                actual.AsSpan().Fill(float.NaN);
                _rules.Gemm(a, b, expected, m, k, n, transposeB, ComputeProgress.None);
                backends[multiprocessors].Gemm(a, b, actual, m, k, n, transposeB, ComputeProgress.None);
                AssertSameBits(expected, actual, $"gemm m={m} k={k} n={n} transposeB={transposeB}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Multiprocessors))]
    public void MatVec_is_byte_identical_to_the_rules_both_ways(int multiprocessors)
    {
        var random = Seeded(1703);
        // 16 and 17 columns: DOT16 with and without a tail; 4097 and 8193 rows: two and three fixed chunks.
        var shapes = new List<(int Rows, int Cols)> { (1, 1), (1, 15), (3, 16), (7, 17), (33, 100), (4097, 3), (8193, 1), (20, 300) };
        for (var i = 0; i < 3; i++)
            shapes.Add((random.Next(1, 200), random.Next(1, 200)));
        foreach (var (rows, cols) in shapes)
        {
            var a = Values(random, rows * cols);
            foreach (var transpose in new[] { false, true })
            {
                var x = Values(random, transpose ? rows : cols);
                int outputs = transpose ? cols : rows;
                float[] expected = new float[outputs], actual = new float[outputs];
                _rules.MatVec(a, x, expected, rows, cols, transpose);
                backends[multiprocessors].MatVec(a, x, actual, rows, cols, transpose);
                AssertSameBits(expected, actual, $"matvec rows={rows} cols={cols} transpose={transpose}");
                if (!transpose && rows < 1000)
                {
                    // The GPU layout (16 lanes of 16 rows per group, folded in shared memory) on the emulator too.
                    var backend = backends[multiprocessors];
                    backend.GroupedMatVec = true;
                    try
                    {
                        backend.MatVec(a, x, actual, rows, cols, transpose);
                    }
                    finally
                    {
                        backend.GroupedMatVec = false;
                    }
                    AssertSameBits(expected, actual, $"grouped matvec rows={rows} cols={cols}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Multiprocessors))]
    public void Bias_and_every_activation_are_byte_identical_to_the_rules(int multiprocessors)
    {
        var random = Seeded(1704);
        // Across the polynomial / exp / saturation ranges of tanh and the overflow / subnormal ranges of exp,
        // plus the special values.
        float[] specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon, 1e-40f,
            0.625f, -0.625f, 0.62499994f, 9.999999f, 10f, -10f, 88.72283f, 88.72284f, -103.97208f, -103.97209f, -87.5f, -100f, 30f, -30f, 1e30f, -1e30f];
        foreach (var activation in Enum.GetValues<Activation>())
        {
            foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (17, 33), (specials.Length, 1) })
            {
                var c = new float[rows * cols];
                for (var i = 0; i < c.Length; i++)
                    c[i] = cols == 1 && rows == specials.Length ? specials[i] : (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 8)));
                var bias = cols == 1 && rows == specials.Length ? [0f] : Values(random, cols);
                float[] expected = (float[])c.Clone(), actual = (float[])c.Clone();
                _rules.BiasActivation(expected, rows, cols, bias, activation);
                backends[multiprocessors].BiasActivation(actual, rows, cols, bias, activation);
                AssertSameBits(expected, actual, $"bias+{activation} rows={rows} cols={cols}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Multiprocessors))]
    public void Nearest_centroid_gives_the_rules_labels_with_ties_and_nan(int multiprocessors)
    {
        var random = Seeded(1705);
        foreach (var (n, d, k) in new[] { (1, 1, 1), (10, 3, 4), (300, 17, 9), (257, 1, 33) })
        {
            var points = Values(random, n * d);
            var centroids = Values(random, k * d);
            if (k > 2)
            {
                // A duplicated centroid (every point ties between 0 and k-1) and a point of NaN.
                Array.Copy(centroids, 0, centroids, (k - 1) * d, d);
                points[0] = float.NaN;
            }
            int[] expected = new int[n], actual = new int[n];
            _rules.NearestCentroid(points, n, d, centroids, k, expected);
            backends[multiprocessors].NearestCentroid(points, n, d, centroids, k, actual);
            Assert.Equal(expected, actual);
        }
    }

    public static TheoryData<string, int> CatalogueKernels()
    {
        var data = new TheoryData<string, int>();
        foreach (var kernel in KernelCatalog.Names)
        {
            data.Add(kernel, 1);
            data.Add(kernel, 2);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CatalogueKernels))]
    public void Every_catalogue_kernel_on_ilgpu_is_byte_identical_to_the_rules(string kernel, int multiprocessors)
    {
        var random = Seeded(1710 + KernelCatalog.Names.ToList().IndexOf(kernel));
        foreach (var (inputs, parameters) in Problems(kernel, random))
        {
            var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
            var plan = KernelCatalog.Plan(kernel, infos, parameters, out var error);
            Assert.Null(error);
            var expected = KernelRunner.Run(kernel, plan.Arguments, inputs, _rules, ComputeProgress.None);
            var actual = KernelRunner.Run(kernel, plan.Arguments, inputs, backends[multiprocessors], ComputeProgress.None);
            var shape = string.Join(" ", inputs.Select(i => $"{i.Key}=[{string.Join(",", i.Value.Shape)}]"));
            foreach (var (name, array) in expected)
            {
                if (array.DType == NpyDType.Float32)
                    AssertSameBits(array.Float32!, actual[name].Float32!, $"{kernel} {shape} output {name}");
                else
                    Assert.Equal(array.Int32!, actual[name].Int32!);
            }
        }
    }

    private static IEnumerable<(Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters)> Problems(string kernel, Random random)
    {
        switch (kernel)
        {
            case KernelCatalog.VectorAdd:
                foreach (var n in new[] { 1, 300 })
                    yield return (new() { ["a"] = Tensors.Uniform(random, n), ["b"] = Tensors.Uniform(random, n) }, []);
                break;
            case KernelCatalog.Matmul:
                foreach (var (m, k, n) in new[] { (1, 1, 1), (65, 31, 70) })
                    yield return (new() { ["a"] = Tensors.Uniform(random, m, k), ["b"] = Tensors.Uniform(random, k, n) }, []);
                break;
            case KernelCatalog.KMeans:
                yield return (new() { ["points"] = Tensors.Uniform(random, 1, 1) }, new() { ["k"] = "1", ["iterations"] = "2" });
                yield return (new() { ["points"] = Tensors.Uniform(random, 200, 5) }, new() { ["k"] = "4", ["iterations"] = "4", ["seed"] = "7" });
                break;
            case KernelCatalog.Knn:
                yield return (new() { ["corpus"] = Tensors.Uniform(random, 1, 1), ["queries"] = Tensors.Uniform(random, 1, 1) }, new() { ["k"] = "1" });
                foreach (var metric in new[] { "cosine", "l2" })
                    yield return (new() { ["corpus"] = Tensors.Uniform(random, 150, 19), ["queries"] = Tensors.Uniform(random, 7, 19) }, new() { ["k"] = "5", ["metric"] = metric });
                break;
            case KernelCatalog.TrainLogReg:
                foreach (var (n, d) in new[] { (1, 1), (130, 21) })
                {
                    var y = new float[n];
                    for (var i = 0; i < n; i++)
                        y[i] = random.Next(2);
                    yield return (new() { ["x"] = Tensors.Uniform(random, n, d), ["y"] = NpyArray.FromFloat32(y, n) }, new() { ["epochs"] = "3" });
                }
                break;
            case KernelCatalog.MlpInfer:
                foreach (var activation in new[] { "relu", "tanh", "sigmoid", "identity" })
                {
                    yield return (new()
                    {
                        ["x"] = Tensors.Uniform(random, 33, 20),
                        ["w1"] = Tensors.Uniform(random, 20, 70),
                        ["b1"] = Tensors.Uniform(random, 70),
                        ["w2"] = Tensors.Uniform(random, 70, 3),
                        ["b2"] = Tensors.Uniform(random, 3),
                    }, new() { ["activation"] = activation });
                }
                break;
            default:
                throw new ArgumentException($"no problems for {kernel}", nameof(kernel));
        }
    }

    [Fact]
    public void IlgpuMath_follows_ReproMath_bit_for_bit()
    {
        // Every 65521st bit pattern (all signs, exponents, NaNs and subnormals) and the thresholds.
        var checkedValues = 0;
        for (long bits = 0; bits <= uint.MaxValue; bits += 65521)
        {
            var x = BitConverter.Int32BitsToSingle(unchecked((int)(uint)bits));
            Check(x);
            checkedValues++;
        }
        foreach (var x in new[] { ReproMath.ExpOverflow, ReproMath.ExpUnderflow, ReproMath.TanhPolynomialLimit, ReproMath.TanhSaturation, -0f, 0f, float.Epsilon })
        {
            Check(x);
            Check(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) + 1));
            Check(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) - 1));
        }
        output.WriteLine($"{checkedValues} values");

        static void Check(float x)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits(ReproMath.Exp(x)), BitConverter.SingleToInt32Bits(IlgpuMath.Exp<ManagedOps>(x)));
            Assert.Equal(BitConverter.SingleToInt32Bits(ReproMath.Tanh(x)), BitConverter.SingleToInt32Bits(IlgpuMath.Tanh<ManagedOps>(x)));
            Assert.Equal(BitConverter.SingleToInt32Bits(ReproMath.Sigmoid(x)), BitConverter.SingleToInt32Bits(IlgpuMath.Sigmoid<ManagedOps>(x)));
        }
    }
}
