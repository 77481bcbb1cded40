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
}
