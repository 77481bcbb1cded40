using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Worker.Compute;
using Platform.Worker.Compute.Ilgpu;
using Platform.Worker.Compute.Simd;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// The known-answer check a node runs on its backends at start: every backend here passes it, and a backend that
/// rounds one operation differently (a library tanh, a sum in another order) is caught for exactly the kernels it
/// would have computed other bytes for.
/// </summary>
public sealed class ArithmeticSelfTestTests(Backends backends) : IClassFixture<Backends>
{
    [Theory]
    [InlineData("simd")]
    [InlineData("opencl")]
    public void Every_backend_here_computes_the_rules_bytes(string name) =>
        Assert.Empty(ArithmeticSelfTest.Differences(backends[name], CancellationToken.None));

    [Fact]
    public void The_ilgpu_emulator_computes_the_rules_bytes()
    {
        using var ilgpu = IlgpuBackend.CreateCpu(2);
        Assert.Empty(ArithmeticSelfTest.Differences(ilgpu, CancellationToken.None));
    }

    [Fact]
    public void A_backend_with_a_library_tanh_is_caught_for_the_kernels_that_use_it()
    {
        using var simd = new SimdBackend();
        var differences = ArithmeticSelfTest.Differences(new LibraryTanh(simd), CancellationToken.None);
        Assert.Equal([KernelCatalog.MlpInfer], differences.Keys);
        Assert.Contains("activation=tanh", differences[KernelCatalog.MlpInfer], StringComparison.Ordinal);
    }

    [Fact]
    public void A_backend_that_sums_a_product_in_another_order_is_caught_for_every_kernel_built_on_it()
    {
        using var simd = new SimdBackend();
        var differences = ArithmeticSelfTest.Differences(new ReversedGemm(simd), CancellationToken.None);
        // matmul, knn (scores are products) and mlp-infer are built on Gemm; the others are not.
        Assert.Equal([KernelCatalog.Knn, KernelCatalog.Matmul, KernelCatalog.MlpInfer], differences.Keys.Order(StringComparer.Ordinal));
    }

    /// <summary>SIMD, except that tanh is .NET's own (close, but not ReproMath's bytes).</summary>
    private sealed class LibraryTanh(IComputeBackend inner) : Wrapped(inner)
    {
        public override void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation)
        {
            if (activation != Activation.Tanh)
            {
                Inner.BiasActivation(c, rows, cols, bias, activation);
                return;
            }
            Inner.BiasActivation(c, rows, cols, bias, Activation.Identity);
            foreach (ref var x in c.Span)
                x = MathF.Tanh(x);
        }
    }

    /// <summary>SIMD, except that Gemm sums over k from the last term to the first.</summary>
    private sealed class ReversedGemm(IComputeBackend inner) : Wrapped(inner)
    {
        public override void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress)
        {
            ReadOnlySpan<float> x = a.Span, y = b.Span;
            var z = c.Span;
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    var s = 0f;
                    for (var p = k - 1; p >= 0; p--)
                        s = MathF.FusedMultiplyAdd(x[(i * k) + p], transposeB ? y[(j * k) + p] : y[(p * n) + j], s);
                    z[(i * n) + j] = s;
                }
            }
        }
    }

    private abstract class Wrapped(IComputeBackend inner) : IComputeBackend
    {
        protected IComputeBackend Inner => inner;

        public string Name => "wrapped";

        public DeviceInfo Device => inner.Device;

        public long MemoryBytes => inner.MemoryBytes;

        public void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c) => inner.Add(a, b, c);

        public virtual void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress) =>
            inner.Gemm(a, b, c, m, k, n, transposeB, progress);

        public void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose) => inner.MatVec(a, x, y, rows, cols, transpose);

        public virtual void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation) =>
            inner.BiasActivation(c, rows, cols, bias, activation);

        public void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels) =>
            inner.NearestCentroid(points, n, d, centroids, k, labels);

        public void Dispose()
        {
        }
    }
}
