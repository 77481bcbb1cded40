using System.Globalization;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Bitwise reproducibility (docs/KERNELS.md): every primitive and every catalogue kernel gives the same bytes on
/// SIMD with one, two and the default number of threads and on OpenCL, and those bytes are the plain scalar rule
/// reference's (<see cref="RuleReference"/>, the rules written out one element at a time). Random shapes and values
/// from fixed, printed seeds, with the edge shapes that catch a wrong order: 1×1, sizes that are not multiples of
/// 16 or of the GEMM tiles, k across several GEMM k blocks, fewer than 16 columns, rows across several 4096-row
/// chunks, and subnormal, infinite, NaN and signed-zero values.
/// </summary>
public sealed class ReproducibilityTests(Backends backends, ITestOutputHelper output) : IClassFixture<Backends>
{
    private static readonly RuleReference Rule = new();

    private Random Seeded(int seed)
    {
        output.WriteLine($"seed {seed}");
        return new Random(seed);
    }

    [Fact]
    public void Add_gives_the_rule_bytes_on_every_backend_and_thread_count()
    {
        var random = Seeded(101);
        foreach (var n in new[] { 1, 15, 17, 4096, 3 * 4096 + 5, 300_001 })
        {
            float[] a = Values(random, n, specials: true), b = Values(random, n, specials: true);
            var expected = new float[n];
            Rule.Add(a, b, expected);
            foreach (var (label, backend) in backends.All)
            {
                var actual = new float[n];
                backend.Add(a, b, actual);
                AssertSameBits(expected, actual, $"add n={n} on {label}");
            }
        }
    }

    [Fact]
    public void Gemm_gives_the_rule_bytes_on_every_backend_and_thread_count()
    {
        var random = Seeded(102);
        // (1,1,1) and single rows/columns; tiles of 8×32 (SIMD) and 8×16 (OpenCL) and one off; k across the k
        // blocks of 256 (the second block must continue the first's sums); k = 0; one product big enough to be
        // spread over threads.
        (int M, int K, int N)[] shapes = [(1, 1, 1), (1, 300, 1), (1, 513, 40), (37, 600, 1), (7, 33, 5), (8, 256, 32), (9, 257, 33),
            (65, 700, 129), (130, 257, 67), (3, 0, 4), (200, 530, 300)];
        shapes = [.. shapes, (random.Next(1, 90), random.Next(1, 900), random.Next(1, 90)), (random.Next(1, 90), random.Next(1, 900), random.Next(1, 90))];
        foreach (var (m, k, n) in shapes)
        {
            foreach (var transposeB in new[] { false, true })
            {
                float[] a = Values(random, m * k, specials: false), b = Values(random, k * n, specials: false);
                if (m == 9)
                {
                    // Products and sums in the subnormal range: a device flushing them would give zeros.
                    for (var i = 0; i < a.Length; i++)
                        a[i] *= 1e-19f;
                    for (var i = 0; i < b.Length; i++)
                        b[i] *= 1e-20f;
                }
                var expected = new float[m * n];
                Rule.Gemm(a, b, expected, m, k, n, transposeB, ComputeProgress.None);
                foreach (var (label, backend) in backends.All)
                {
                    var actual = Enumerable.Repeat(float.NaN, m * n).ToArray();
                    backend.Gemm(a, b, actual, m, k, n, transposeB, ComputeProgress.None);
                    AssertSameBits(expected, actual, $"gemm m={m} k={k} n={n} transposeB={transposeB} on {label}");
                }
            }
        }
    }

    [Fact]
    public void MatVec_gives_the_rule_bytes_on_every_backend_and_thread_count()
    {
        var random = Seeded(103);
        // Fewer than 16 columns, not multiples of 16, rows across several 4096-row chunks (transposed), and sizes
        // above the SIMD backend's threshold for sharing the work out.
        (int Rows, int Cols)[] shapes = [(1, 1), (5, 15), (7, 16), (33, 17), (100, 1000), (1000, 37), (4096, 16), (4097, 5),
            (3 * 4096 + 17, 7), (9000, 40), (20_000, 33), (0, 3), (random.Next(1, 20_000), random.Next(1, 70))];
        foreach (var (rows, cols) in shapes)
        {
            foreach (var transpose in new[] { false, true })
            {
                float[] a = Values(random, rows * cols, specials: false), x = Values(random, transpose ? rows : cols, specials: false);
                var length = transpose ? cols : rows;
                var expected = new float[length];
                Rule.MatVec(a, x, expected, rows, cols, transpose);
                foreach (var (label, backend) in backends.All)
                {
                    var actual = Enumerable.Repeat(float.NaN, length).ToArray();
                    backend.MatVec(a, x, actual, rows, cols, transpose);
                    AssertSameBits(expected, actual, $"matvec rows={rows} cols={cols} transpose={transpose} on {label}");
                }
            }
        }
    }

    [Theory]
    [InlineData(Activation.Identity)]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.Tanh)]
    [InlineData(Activation.Sigmoid)]
    public void BiasActivation_gives_the_rule_bytes_on_every_backend_and_thread_count(Activation activation)
    {
        var random = Seeded(104 + (int)activation);
        (int Rows, int Cols)[] shapes = [(1, 1), (3, 15), (2, 16), (17, 33), (300, 100), (600, 500), (random.Next(1, 300), random.Next(1, 300))];
        foreach (var (rows, cols) in shapes)
        {
            // Values across the whole range the activations treat differently: the polynomial and exp branches of
            // tanh, exp's overflow and subnormal ranges, and the special values.
            var c = Values(random, rows * cols, specials: true, scale: 40);
            var bias = Values(random, cols, specials: false);
            var expected = c.ToArray();
            Rule.BiasActivation(expected, rows, cols, bias, activation);
            foreach (var (label, backend) in backends.All)
            {
                var actual = c.ToArray();
                backend.BiasActivation(actual, rows, cols, bias, activation);
                AssertSameBits(expected, actual, $"bias+{activation} rows={rows} cols={cols} on {label}");
            }
        }
    }

    [Fact]
    public void NearestCentroid_gives_the_rule_labels_on_every_backend_and_thread_count()
    {
        var random = Seeded(108);
        (int N, int D, int K)[] shapes = [(1, 1, 1), (10, 3, 5), (100, 17, 33), (1000, 16, 16), (5000, 32, 64), (3000, 5, 130),
            (random.Next(1, 3000), random.Next(1, 40), random.Next(1, 70))];
        foreach (var (n, d, k) in shapes)
        {
            // Coarse values make equal distances (ties) common; a few NaN coordinates make NaN distances.
            var points = Enumerable.Range(0, n * d).Select(_ => (float)random.Next(-3, 4)).ToArray();
            var centroids = Enumerable.Range(0, k * d).Select(_ => (float)random.Next(-3, 4)).ToArray();
            if (k > 2)
                Array.Copy(centroids, 0, centroids, (k - 1) * d, d);
            if (n > 3)
                points[d + (d / 2)] = float.NaN;
            var fine = Values(random, n * d, specials: false);
            for (var i = n / 2 * d; i < n * d; i++)
                points[i] = fine[i];
            var expected = new int[n];
            Rule.NearestCentroid(points, n, d, centroids, k, expected);
            foreach (var (label, backend) in backends.All)
            {
                var actual = Enumerable.Repeat(-1, n).ToArray();
                backend.NearestCentroid(points, n, d, centroids, k, actual);
                Assert.True(expected.SequenceEqual(actual),
                    $"nearest centroid n={n} d={d} k={k} on {label}: first difference at {FirstDifference(expected, actual)}");
            }
        }
    }

    public static TheoryData<string, string> Kernels => new()
    {
        { "vector-add", "" },
        { "matmul", "" },
        { "kmeans", "" },
        { "knn", "cosine" },
        { "knn", "l2" },
        { "train-logreg", "" },
        { "mlp-infer", "relu" },
        { "mlp-infer", "tanh" },
        { "mlp-infer", "sigmoid" },
        { "mlp-infer", "identity" },
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Every_catalogue_kernel_gives_the_same_output_cids_on_every_backend_and_thread_count_as_the_rule_reference(string kernel, string variant)
    {
        var random = Seeded(200 + kernel.Length + variant.Length);
        for (var round = 0; round < 4; round++)
        {
            // Round 0 is the smallest shape the kernel takes; the others are random.
            var (inputs, parameters) = Problem(kernel, variant, random, smallest: round == 0);
            var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
            var plan = KernelCatalog.Plan(kernel, infos, parameters, out var error);
            Assert.Null(error);
            var shapes = string.Join(", ", inputs.Select(i => $"{i.Key} [{string.Join(",", i.Value.Shape)}]"));
            var expected = Cids(KernelRunner.Run(kernel, plan.Arguments, inputs, Rule, ComputeProgress.None));
            output.WriteLine($"{kernel} {variant} {shapes}: {string.Join(", ", expected.Select(e => $"{e.Key} {e.Value.Cid}"))}");
            foreach (var (label, backend) in backends.All)
            {
                var actual = Cids(KernelRunner.Run(kernel, plan.Arguments, inputs, backend, ComputeProgress.None));
                foreach (var (name, (cid, array)) in expected)
                {
                    Assert.True(cid == actual[name].Cid,
                        $"{kernel} {variant} ({shapes}) output {name} on {label}: {actual[name].Cid}, expected {cid}; first difference at {FirstDifference(array, actual[name].Array)}");
                }
            }
        }
    }

    [Fact]
    public void Every_NaN_of_an_output_is_the_canonical_NaN_whatever_payload_the_hardware_kept()
    {
        // x86 keeps an operand's NaN payload and sign, a GPU returns its own NaN: the output must not depend on it.
        float[] a = [BitConverter.Int32BitsToSingle(0x7FC12345), BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001)), 1f, float.PositiveInfinity];
        float[] b = [1f, 2f, BitConverter.Int32BitsToSingle(0x7FA00000), float.NegativeInfinity];
        var inputs = new Dictionary<string, NpyArray> { ["a"] = NpyArray.FromFloat32(a, 4), ["b"] = NpyArray.FromFloat32(b, 4) };
        var plan = KernelCatalog.Plan("vector-add", inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape)), new Dictionary<string, string>(), out _);
        foreach (var (label, backend) in backends.All)
        {
            var c = KernelRunner.Run("vector-add", plan.Arguments, inputs, backend, ComputeProgress.None)["c"].Float32!;
            Assert.All(c, (value, i) => Assert.True(BitConverter.SingleToInt32Bits(value) == KernelRunner.CanonicalNaNBits,
                $"c[{i}] on {label} is 0x{BitConverter.SingleToInt32Bits(value):X8}, not the canonical NaN 0x{KernelRunner.CanonicalNaNBits:X8}"));
        }
    }

    private static Dictionary<string, (string Cid, NpyArray Array)> Cids(IReadOnlyDictionary<string, NpyArray> outputs) =>
        outputs.ToDictionary(o => o.Key, o => (Cid.Compute(Npy.ToBytes(o.Value)).ToString(), o.Value));

    private static (Dictionary<string, NpyArray> Inputs, Dictionary<string, string> Parameters) Problem(string kernel, string variant, Random random, bool smallest)
    {
        int Size(int max) => smallest ? 1 : random.Next(1, max + 1);
        NpyArray Matrix(int rows, int cols) => NpyArray.FromFloat32(Values(random, rows * cols, specials: false), rows, cols);
        NpyArray Vector(int length) => NpyArray.FromFloat32(Values(random, length, specials: false), length);
        switch (kernel)
        {
            case "vector-add":
                {
                    var n = Size(70_000);
                    return (new() { ["a"] = NpyArray.FromFloat32(Values(random, n, specials: true), n), ["b"] = NpyArray.FromFloat32(Values(random, n, specials: true), n) }, []);
                }
            case "matmul":
                {
                    int m = Size(150), k = Size(600), n = Size(150);
                    return (new() { ["a"] = Matrix(m, k), ["b"] = Matrix(k, n) }, []);
                }
            case "kmeans":
                {
                    int d = Size(40), k = Size(20), n = k + Size(3000);
                    return (new() { ["points"] = Matrix(n, d) },
                        new() { ["k"] = Text(k), ["iterations"] = Text(Size(6)), ["seed"] = Text(random.Next(0, 100)) });
                }
            case "knn":
                {
                    int d = Size(70), k = Size(12), n = k + Size(9000), q = Size(300);
                    return (new() { ["corpus"] = Matrix(n, d), ["queries"] = Matrix(q, d) }, new() { ["k"] = Text(k), ["metric"] = variant });
                }
            case "train-logreg":
                {
                    int n = Size(9000), d = Size(40);
                    var y = Enumerable.Range(0, n).Select(_ => (float)random.Next(0, 2)).ToArray();
                    return (new() { ["x"] = Matrix(n, d), ["y"] = NpyArray.FromFloat32(y, n) },
                        new() { ["epochs"] = Text(Size(8)), ["learningRate"] = "0.5", ["l2"] = "0.01" });
                }
            default:
                {
                    int n = Size(300), d = Size(70), h = Size(90), o = Size(20);
                    return (new() { ["x"] = Matrix(n, d), ["w1"] = Matrix(d, h), ["b1"] = Vector(h), ["w2"] = Matrix(h, o), ["b2"] = Vector(o) },
                        new() { ["activation"] = variant });
                }
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Gaussian values scaled by random powers of two (so that the order of a sum changes its rounding), and with
    /// <paramref name="specials"/> a sprinkling of NaN, ±Inf, ±0, subnormals and the activations' thresholds.
    /// </summary>
    private static float[] Values(Random random, int count, bool specials, float scale = 1)
    {
        float[] special = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 1e-40f, -3e-42f, float.Epsilon,
            88.72283f, -88.72284f, 103.9f, -103.9f, 0.625f, -0.625f, 10f, -10f, 9.999999f, float.MaxValue, -float.MaxValue];
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = specials && random.Next(16) == 0
                ? special[random.Next(special.Length)]
                : (float)(Tensors.Gaussian(random) * scale * Math.Pow(2, random.Next(-6, 4)));
        }
        return values;
    }

    /// <summary>Same bits, except that any NaN equals any NaN: primitives leave NaN payloads to the hardware and
    /// KernelRunner makes every NaN of an output the canonical one.</summary>
    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i]) && float.IsNaN(actual[i]))
                continue;
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}), the rule gives {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
        }
    }

    private static string FirstDifference(NpyArray expected, NpyArray actual) =>
        expected.Float32 is { } e ? FirstDifference(e.Select(BitConverter.SingleToInt32Bits).ToArray(), actual.Float32!.Select(BitConverter.SingleToInt32Bits).ToArray())
        : FirstDifference(expected.Int32!, actual.Int32!);

    private static string FirstDifference(int[] expected, int[] actual)
    {
        for (var i = 0; i < Math.Min(expected.Length, actual.Length); i++)
        {
            if (expected[i] != actual[i])
                return $"element {i}: 0x{actual[i]:X8}, expected 0x{expected[i]:X8}";
        }
        return expected.Length == actual.Length ? "none" : $"lengths {actual.Length} and {expected.Length}";
    }
}
