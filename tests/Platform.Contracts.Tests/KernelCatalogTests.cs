using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Contracts.Tests;

public sealed class KernelCatalogTests
{
    private static readonly Dictionary<string, string> NoParams = [];

    private static TensorInfo F32(params int[] shape) => new(NpyDType.Float32, shape);

    [Fact]
    public void Matmul_plans_an_m_by_n_output_and_2mkn_flops()
    {
        var plan = KernelCatalog.Plan("matmul", new Dictionary<string, TensorInfo> { ["a"] = F32(3, 4), ["b"] = F32(4, 5) }, NoParams, out var error);

        Assert.Null(error);
        Assert.Equal([3, 5], plan.Outputs["c"].Shape);
        Assert.Equal(2.0 * 3 * 4 * 5 / 1e9, plan.Gflop, 15);
    }

    [Fact]
    public void Matmul_shape_mismatch_names_both_shapes()
    {
        KernelCatalog.Plan("matmul", new Dictionary<string, TensorInfo> { ["a"] = F32(3, 4), ["b"] = F32(5, 6) }, NoParams, out var error);

        Assert.Contains("shape mismatch", error);
        Assert.Contains("[3,4]", error);
        Assert.Contains("[5,6]", error);
    }

    [Theory]
    [InlineData("vector-add", new[] { 3 }, new[] { 4 }, "same length")]
    [InlineData("vector-add", new[] { 3, 1 }, new[] { 3 }, "1-D")]
    [InlineData("matmul", new[] { 3 }, new[] { 3, 3 }, "2-D")]
    public void Wrong_shapes_are_refused_with_a_reason(string kernel, int[] a, int[] b, string reason)
    {
        KernelCatalog.Plan(kernel, new Dictionary<string, TensorInfo> { ["a"] = F32(a), ["b"] = F32(b) }, NoParams, out var error);

        Assert.Contains(reason, error);
    }

    /// <summary>A zero-size dimension anywhere is refused with the input and the axis named: no free outputs of any size.</summary>
    [Theory]
    [InlineData("matmul", "a", new[] { 4096, 0 }, "b", new[] { 0, 4096 }, "input 'a' float32[4096,0] has a zero-size dimension (axis 1)")]
    [InlineData("matmul", "a", new[] { 0, 3 }, "b", new[] { 3, 3 }, "input 'a' float32[0,3] has a zero-size dimension (axis 0)")]
    [InlineData("knn", "corpus", new[] { 10, 0 }, "queries", new[] { 2, 0 }, "input 'corpus' float32[10,0] has a zero-size dimension (axis 1)")]
    [InlineData("knn", "corpus", new[] { 10, 8 }, "queries", new[] { 0, 8 }, "input 'queries' float32[0,8] has a zero-size dimension (axis 0)")]
    [InlineData("vector-add", "a", new[] { 0 }, "b", new[] { 0 }, "input 'a' float32[0] has a zero-size dimension (axis 0)")]
    public void Zero_size_dimensions_are_refused_naming_the_input_and_axis(string kernel, string first, int[] firstShape, string second, int[] secondShape, string reason)
    {
        var parameters = kernel == "knn" ? new Dictionary<string, string> { ["k"] = "1" } : NoParams;
        var plan = KernelCatalog.Plan(kernel, new Dictionary<string, TensorInfo> { [first] = F32(firstShape), [second] = F32(secondShape) }, parameters, out var error);

        Assert.NotNull(error);
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.Empty(plan.Outputs);
    }

    [Fact]
    public void Int32_inputs_are_refused_for_float_kernels()
    {
        KernelCatalog.Plan("vector-add", new Dictionary<string, TensorInfo> { ["a"] = new(NpyDType.Int32, [3]), ["b"] = F32(3) }, NoParams, out var error);

        Assert.Contains("float32", error);
    }

    [Fact]
    public void Huge_matmul_output_is_refused_before_anything_is_allocated()
    {
        KernelCatalog.Plan("matmul", new Dictionary<string, TensorInfo> { ["a"] = F32(1_000_000, 1), ["b"] = F32(1, 1_000_000) }, NoParams, out var error);

        Assert.Contains("too large", error);
    }

    [Theory]
    [InlineData("convolve", new[] { "a", "b" }, "unknown kernel")]
    [InlineData("matmul", new[] { "a" }, "needs input(s) 'b'")]
    [InlineData("matmul", new[] { "a", "b", "c" }, "has no input(s) 'c'")]
    public void Names_are_checked_before_any_blob_is_read(string kernel, string[] inputs, string reason)
    {
        Assert.Contains(reason, KernelCatalog.CheckNames(kernel, inputs, NoParams));
    }

    [Fact]
    public void Parameters_are_refused_for_kernels_that_take_none()
    {
        Assert.Contains("takes no parameters", KernelCatalog.CheckNames("matmul", ["a", "b"], new Dictionary<string, string> { ["k"] = "3" }));
    }

    private static Dictionary<string, TensorInfo> Inputs(params (string Name, TensorInfo Info)[] inputs) => inputs.ToDictionary(i => i.Name, i => i.Info);

    private static Dictionary<string, string> Params(params (string Name, string Value)[] values) => values.ToDictionary(v => v.Name, v => v.Value);

    [Fact]
    public void Kmeans_plans_centroids_and_int32_labels_with_defaults_filled_in()
    {
        var plan = KernelCatalog.Plan("kmeans", Inputs(("points", F32(100, 3))), Params(("k", "4")), out var error);

        Assert.Null(error);
        Assert.Equal([4, 3], plan.Outputs["centroids"].Shape);
        Assert.Equal(NpyDType.Int32, plan.Outputs["labels"].DType);
        Assert.Equal([100], plan.Outputs["labels"].Shape);
        Assert.Equal(20, plan.Arguments.Int("iterations"));
        Assert.Equal(0, plan.Arguments.Long("seed"));
        Assert.True(plan.Gflop > 0);
    }

    [Fact]
    public void Knn_plans_indices_and_scores_per_query()
    {
        var plan = KernelCatalog.Plan("knn", Inputs(("corpus", F32(50, 8)), ("queries", F32(3, 8))), Params(("k", "5"), ("metric", "l2")), out var error);

        Assert.Null(error);
        Assert.Equal([3, 5], plan.Outputs["indices"].Shape);
        Assert.Equal(NpyDType.Int32, plan.Outputs["indices"].DType);
        Assert.Equal([3, 5], plan.Outputs["scores"].Shape);
        Assert.Equal("l2", plan.Arguments.Text("metric"));
    }

    [Fact]
    public void Train_logreg_takes_int32_or_float32_labels_and_plans_d_plus_one_weights()
    {
        foreach (var labels in new[] { new TensorInfo(NpyDType.Int32, [10]), F32(10) })
        {
            var plan = KernelCatalog.Plan("train-logreg", Inputs(("x", F32(10, 4)), ("y", labels)), Params(("epochs", "7")), out var error);

            Assert.Null(error);
            Assert.Equal([5], plan.Outputs["weights"].Shape);
            Assert.Equal([7], plan.Outputs["loss"].Shape);
        }
    }

    [Fact]
    public void Mlp_infer_chains_the_layer_shapes()
    {
        var plan = KernelCatalog.Plan("mlp-infer",
            Inputs(("x", F32(6, 4)), ("w1", F32(4, 8)), ("b1", F32(8)), ("w2", F32(8, 2)), ("b2", F32(2))), Params(("activation", "tanh")), out var error);

        Assert.Null(error);
        Assert.Equal([6, 2], plan.Outputs["y"].Shape);
        Assert.Equal(2.0 * 6 * ((4 * 8) + (8 * 2) + 8 + 2) / 1e9, plan.Gflop, 12);
    }

    [Theory]
    [InlineData("kmeans", "k", "0", "from 1 to 4096")]
    [InlineData("kmeans", "k", "2.5", "whole number")]
    [InlineData("kmeans", "k", "1e400", "whole number")]
    [InlineData("kmeans", "iterations", "NaN", "iterations")]
    [InlineData("kmeans", "seed", "-1", "seed")]
    [InlineData("knn", "metric", "manhattan", "one of cosine, l2")]
    [InlineData("knn", "k", "100000", "from 1 to 1024")]
    [InlineData("train-logreg", "learningRate", "0", "learningRate")]
    [InlineData("train-logreg", "l2", "-1", "l2")]
    [InlineData("train-logreg", "epochs", "1000000", "epochs")]
    [InlineData("mlp-infer", "activation", "softmax", "one of relu, tanh, sigmoid, identity")]
    [InlineData("kmeans", "clusters", "3", "has no parameter(s) 'clusters'")]
    public void Bad_parameters_are_refused_before_any_blob_is_read(string kernel, string name, string value, string reason)
    {
        var inputs = KernelCatalog.InputNames(kernel).ToList();

        var error = KernelCatalog.CheckNames(kernel, inputs, Params((name, value)));

        Assert.Contains(reason, error);
    }

    [Theory]
    [InlineData("kmeans", "needs at least k=8 points")]
    [InlineData("knn", "same width")]
    [InlineData("train-logreg", "one label per row")]
    [InlineData("mlp-infer", "do not chain")]
    public void Mismatched_shapes_are_refused_with_a_reason(string kernel, string reason)
    {
        var inputs = kernel switch
        {
            "kmeans" => Inputs(("points", F32(5, 2))),
            "knn" => Inputs(("corpus", F32(50, 8)), ("queries", F32(3, 9))),
            "train-logreg" => Inputs(("x", F32(10, 4)), ("y", F32(9))),
            _ => Inputs(("x", F32(6, 4)), ("w1", F32(5, 8)), ("b1", F32(8)), ("w2", F32(8, 2)), ("b2", F32(2))),
        };

        KernelCatalog.Plan(kernel, inputs, Params(), out var error);

        Assert.Contains(reason, error);
    }

    [Fact]
    public void Kmeans_seeding_picks_k_distinct_points_the_same_way_every_time()
    {
        const int dataSeed = 17;
        var random = new Random(dataSeed);
        var points = Enumerable.Range(0, 1000 * 3).Select(_ => (float)random.NextDouble()).ToArray();
        var first = KMeansSeeding.ChooseIndices(points, 1000, 3, 50, seed: 42);
        var again = KMeansSeeding.ChooseIndices(points, 1000, 3, 50, seed: 42);
        var other = KMeansSeeding.ChooseIndices(points, 1000, 3, 50, seed: 43);

        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        Assert.Equal(50, first.Distinct().Count());
        Assert.All(first, i => Assert.InRange(i, 0, 999));
        // Three distinct points and k = 3: each is chosen once (a chosen point's distance is 0, so never again).
        Assert.Equal([0, 1, 2], KMeansSeeding.ChooseIndices([0f, 0f, 5f, 5f, 9f, 1f], 3, 2, 3, seed: 7).Order());
    }

    [Fact]
    public void Kmeans_seeding_distance_adds_eight_lanes_then_the_tail_in_a_fixed_order()
    {
        // Lanes of 8, combined (s0+s4 + s1+s5) + (s2+s6 + s3+s7), then the tail in order: computed here by hand.
        var p = Enumerable.Range(0, 11).Select(i => (float)(i * 0.37)).ToArray();
        var q = Enumerable.Range(0, 11).Select(i => (float)(1.5 - (i * 0.11))).ToArray();
        double Sq(int t) => ((double)p[t] - q[t]) * ((double)p[t] - q[t]);
        var h = Enumerable.Range(0, 4).Select(i => Sq(i) + Sq(i + 4)).ToArray();
        var expected = (h[0] + h[1]) + (h[2] + h[3]);
        for (var t = 8; t < 11; t++)
            expected += Sq(t);
        Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(KMeansSeeding.SquaredDistance(p, q)));
    }
}
