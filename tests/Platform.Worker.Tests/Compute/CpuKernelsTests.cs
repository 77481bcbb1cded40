using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

public sealed class CpuKernelsTests(ITestOutputHelper output)
{
    private static float[] Random(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 5, 3)]
    [InlineData(64, 300, 33)] // k spans two cache blocks
    [InlineData(129, 257, 65)]
    public void Matmul_matches_a_plain_triple_loop_within_float32_rounding(int m, int k, int n)
    {
        const int seed = 4242;
        output.WriteLine($"seed {seed}, m={m} k={k} n={n}");
        var rng = new Random(seed);
        var a = NpyArray.FromFloat32(Random(rng, m * k), m, k);
        var b = NpyArray.FromFloat32(Random(rng, k * n), k, n);

        var c = CpuKernels.Matmul(a, b, CancellationToken.None);

        Assert.Equal([m, n], c.Shape);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double expected = 0;
                for (var kk = 0; kk < k; kk++)
                    expected += (double)a.Float32![i * k + kk] * b.Float32![kk * n + j];
                // Tolerance: float32 accumulation over k terms of magnitude <= 1.
                Assert.True(Math.Abs(c.Float32![i * n + j] - expected) <= 1e-5 * k + 1e-6, $"c[{i},{j}] = {c.Float32[i * n + j]}, expected {expected}");
            }
        }
    }

    [Fact]
    public void Vector_add_adds_element_wise_exactly()
    {
        const int seed = 7;
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var a = Random(rng, 1001);
        var b = Random(rng, 1001);

        var c = CpuKernels.VectorAdd(NpyArray.FromFloat32(a, a.Length), NpyArray.FromFloat32(b, b.Length));

        Assert.Equal([1001], c.Shape);
        for (var i = 0; i < a.Length; i++)
            Assert.Equal(a[i] + b[i], c.Float32![i]);
    }

    [Fact]
    public void Matmul_stops_when_cancelled()
    {
        var a = NpyArray.FromFloat32(new float[256 * 1024], 256, 1024);
        var b = NpyArray.FromFloat32(new float[1024 * 256], 1024, 256);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() => CpuKernels.Matmul(a, b, cancelled.Token));
    }
}
