using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Testing.Kernels;
using Platform.Worker.Compute;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Every catalogue kernel on every backend against the plain double-precision reference, on random inputs
/// from fixed seeds. The tolerances here are the ones docs/KERNELS.md promises.
/// </summary>
public sealed class KernelTests(Backends backends, ITestOutputHelper output) : IClassFixture<Backends>
{
    public static TheoryData<string> BackendNames => ["simd", "opencl"];

    private Dictionary<string, NpyArray> Run(string backend, string kernel, Dictionary<string, NpyArray> inputs, Dictionary<string, string> parameters, out Dictionary<string, NpyArray> reference)
    {
        var infos = inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape));
        var plan = KernelCatalog.Plan(kernel, infos, parameters, out var error);
        Assert.Null(error);
        reference = ReferenceKernels.Run(kernel, plan.Arguments, inputs);
        var actual = KernelRunner.Run(kernel, plan.Arguments, inputs, backends[backend], ComputeProgress.None);
        foreach (var (name, info) in plan.Outputs)
        {
            Assert.Equal(info.DType, actual[name].DType);
            Assert.Equal(info.Shape, actual[name].Shape);
        }
        return actual.ToDictionary();
    }

    private Random Seeded(int seed)
    {
        output.WriteLine($"seed {seed}");
        return new Random(seed);
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Vector_add_is_exact(string backend)
    {
        var random = Seeded(1);
        foreach (var n in new[] { 1, 17, 1000, 100_003 })
        {
            var actual = Run(backend, "vector-add", new() { ["a"] = Tensors.Uniform(random, n), ["b"] = Tensors.Uniform(random, n) }, [], out var reference);

            Assert.Equal(reference["c"].Float32, actual["c"].Float32);
        }
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Matmul_matches_the_reference_within_1e_5_of_the_sum_of_absolute_products(string backend)
    {
        var random = Seeded(2);
        foreach (var (m, k, n) in new[] { (1, 1, 1), (1, 300, 1), (7, 33, 5), (65, 127, 129), (130, 257, 67), (300, 64, 513) })
        {
            var a = Tensors.Uniform(random, m, k);
            var b = Tensors.Uniform(random, k, n);

            var actual = Run(backend, "matmul", new() { ["a"] = a, ["b"] = b }, [], out var reference);

            // Float32 rounding grows with the magnitude of the terms summed, not of the result.
            var scale = ReferenceKernels.Matmul(Array.ConvertAll(a.Float32!, Math.Abs), Array.ConvertAll(b.Float32!, Math.Abs), m, k, n);
            Tensors.AssertClose(reference["c"].Float32!, actual["c"].Float32!, i => (1e-5 * scale[i]) + 1e-6, $"matmul {m}x{k}x{n}");
        }
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Kmeans_finds_the_reference_labels_exactly_and_centroids_within_1e_4(string backend)
    {
        var random = Seeded(3);
        const int n = 3000, d = 12, k = 6;
        // Blobs far apart (k-means++ seeds one in each), so no cluster boundary runs through a blob and labels are unambiguous.
        var centers = Enumerable.Range(0, k).Select(_ => Enumerable.Range(0, d).Select(_ => (random.NextDouble() * 40) - 20).ToArray()).ToArray();
        var points = new float[n * d];
        for (var i = 0; i < n; i++)
        {
            var blob = random.Next(k);
            for (var j = 0; j < d; j++)
                points[(i * d) + j] = (float)(centers[blob][j] + Tensors.Gaussian(random));
        }

        var actual = Run(backend, "kmeans", new() { ["points"] = NpyArray.FromFloat32(points, n, d) }, new() { ["k"] = "6", ["iterations"] = "8", ["seed"] = "11" }, out var reference);

        Assert.Equal(reference["labels"].Int32, actual["labels"].Int32);
        Tensors.AssertClose(reference["centroids"].Float32!, actual["centroids"].Float32!, _ => 1e-4, "centroids");
    }

    [Theory]
    [InlineData("simd", "cosine")]
    [InlineData("simd", "l2")]
    [InlineData("opencl", "cosine")]
    [InlineData("opencl", "l2")]
    public void Knn_returns_the_reference_scores_in_order_and_each_index_has_the_score_it_claims(string backend, string metric)
    {
        var random = Seeded(4);
        const int n = 9000, q = 300, d = 24, k = 7;
        var corpus = Tensors.Uniform(random, n, d);
        var queries = Tensors.Uniform(random, q, d);
        // A zero row has no direction: its cosine score is 0, not NaN.
        Array.Clear(corpus.Float32!, 5 * d, d);

        var actual = Run(backend, "knn", new() { ["corpus"] = corpus, ["queries"] = queries }, new() { ["k"] = "7", ["metric"] = metric }, out var reference);

        // Neighbours whose scores differ by less than float32 rounding may come in either order; the scores
        // at each rank may not, and each index must really have the score reported for it.
        Tensors.AssertClose(reference["scores"].Float32!, actual["scores"].Float32!, _ => 1e-4, "scores");
        var exact = ReferenceKernels.Run("knn", new KernelArguments(new Dictionary<string, string> { ["k"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture), ["metric"] = metric }),
            new Dictionary<string, NpyArray> { ["corpus"] = corpus, ["queries"] = queries.Slice(0, 20) });
        for (var i = 0; i < 20; i++)
        {
            var scoreOf = new Dictionary<int, float>();
            for (var j = 0; j < n; j++)
                scoreOf[exact["indices"].Int32![(i * n) + j]] = exact["scores"].Float32![(i * n) + j];
            for (var r = 0; r < k; r++)
                Assert.InRange(Math.Abs(scoreOf[actual["indices"].Int32![(i * k) + r]] - actual["scores"].Float32![(i * k) + r]), 0, 1e-4);
        }
        Assert.All(actual["indices"].Int32!.Chunk(k), row => Assert.Equal(k, row.Distinct().Count()));
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Train_logreg_follows_the_reference_loss_curve_and_weights_within_1e_4(string backend)
    {
        var random = Seeded(5);
        const int n = 800, d = 6;
        var truth = Enumerable.Range(0, d).Select(_ => Tensors.Gaussian(random)).ToArray();
        var x = Tensors.Uniform(random, n, d);
        var y = new int[n];
        for (var i = 0; i < n; i++)
        {
            var z = Enumerable.Range(0, d).Sum(j => truth[j] * x.Float32![(i * d) + j]);
            y[i] = random.NextDouble() < 1 / (1 + Math.Exp(-3 * z)) ? 1 : 0;
        }

        var actual = Run(backend, "train-logreg", new() { ["x"] = x, ["y"] = NpyArray.FromInt32(y, n) }, new() { ["epochs"] = "40", ["learningRate"] = "0.5", ["l2"] = "0.01" }, out var reference);

        Tensors.AssertClose(reference["loss"].Float32!, actual["loss"].Float32!, _ => 1e-4, "loss");
        Tensors.AssertClose(reference["weights"].Float32!, actual["weights"].Float32!, _ => 1e-4, "weights");
        Assert.True(actual["loss"].Float32![^1] < actual["loss"].Float32![0], "training lowers the loss");
    }

    [Theory]
    [InlineData("simd", "relu")]
    [InlineData("simd", "tanh")]
    [InlineData("simd", "sigmoid")]
    [InlineData("simd", "identity")]
    [InlineData("opencl", "relu")]
    [InlineData("opencl", "tanh")]
    [InlineData("opencl", "sigmoid")]
    [InlineData("opencl", "identity")]
    public void Mlp_infer_matches_the_reference_within_1e_4(string backend, string activation)
    {
        var random = Seeded(6);
        const int n = 37, d = 19, h = 33, o = 5;
        var inputs = new Dictionary<string, NpyArray>
        {
            ["x"] = Tensors.Uniform(random, n, d),
            ["w1"] = Tensors.Uniform(random, d, h),
            ["b1"] = Tensors.Uniform(random, h),
            ["w2"] = Tensors.Uniform(random, h, o),
            ["b2"] = Tensors.Uniform(random, o),
        };

        var actual = Run(backend, "mlp-infer", inputs, new() { ["activation"] = activation }, out var reference);

        Tensors.AssertClose(reference["y"].Float32!, actual["y"].Float32!, _ => 1e-4, $"mlp-infer {activation}");
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Train_logreg_refuses_labels_other_than_0_and_1(string backend)
    {
        var inputs = new Dictionary<string, NpyArray> { ["x"] = Tensors.Uniform(Seeded(7), 4, 2), ["y"] = NpyArray.FromFloat32([0, 1, 2, 1], 4) };
        var plan = KernelCatalog.Plan("train-logreg", inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape)), new Dictionary<string, string>(), out _);

        var error = Assert.Throws<KernelInputException>(() => KernelRunner.Run("train-logreg", plan.Arguments, inputs, backends[backend], ComputeProgress.None));

        Assert.Contains("y[2] is 2", error.Message);
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Cancelling_a_long_matmul_stops_it_at_its_next_progress_step(string backend)
    {
        const int size = 2048;
        var a = new float[size * size];
        var c = new float[size * size];
        Array.Fill(a, 1f);
        using var cancel = new CancellationTokenSource();
        var reports = new List<double>();
        // Cancelled at the first report: a backend that only checked at the end would finish instead of throwing.
        var progress = new ComputeProgress(cancel.Token, fraction =>
        {
            reports.Add(fraction);
            cancel.Cancel();
        });

        Assert.ThrowsAny<OperationCanceledException>(() => backends[backend].Gemm(a, a, c, size, size, size, transposeB: false, progress));

        Assert.NotEmpty(reports);
        Assert.True(reports.Max() < 0.5, $"stopped at {reports.Max():P0} done");
    }

    [Theory]
    [MemberData(nameof(BackendNames))]
    public void Gemm_with_b_transposed_equals_gemm_with_b(string backend)
    {
        var random = Seeded(8);
        const int m = 45, k = 70, n = 33;
        var a = Tensors.Uniform(random, m, k).Float32!;
        var b = Tensors.Uniform(random, k, n).Float32!;
        var bt = new float[n * k];
        for (var i = 0; i < k; i++)
        {
            for (var j = 0; j < n; j++)
                bt[(j * k) + i] = b[(i * n) + j];
        }
        var expected = ReferenceKernels.Matmul(a, b, m, k, n);
        var actual = new float[m * n];

        backends[backend].Gemm(a, bt, actual, m, k, n, transposeB: true, ComputeProgress.None);

        Tensors.AssertClose(expected, actual, _ => 1e-4, "a·bᵀ");
    }
}
