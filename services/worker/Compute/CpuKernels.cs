using System.Numerics.Tensors;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Compute;

/// <summary>
/// The managed CPU implementation of the catalogue: the reference every other backend is checked against.
/// Inputs have already been validated by <see cref="KernelCatalog.Plan"/>.
/// </summary>
public sealed class CpuKernels
{
    public IReadOnlyDictionary<string, NpyArray> Run(string kernel, IReadOnlyDictionary<string, NpyArray> inputs, CancellationToken ct) => kernel switch
    {
        KernelCatalog.VectorAdd => new Dictionary<string, NpyArray> { ["c"] = VectorAdd(inputs["a"], inputs["b"]) },
        KernelCatalog.Matmul => new Dictionary<string, NpyArray> { ["c"] = Matmul(inputs["a"], inputs["b"], ct) },
        _ => throw new ArgumentException($"kernel '{kernel}' has no CPU implementation", nameof(kernel)),
    };

    public static NpyArray VectorAdd(NpyArray a, NpyArray b)
    {
        var c = new float[a.Float32!.Length];
        TensorPrimitives.Add(a.Float32, b.Float32!, c);
        return NpyArray.FromFloat32(c, c.Length);
    }

    /// <summary>
    /// C = A·B as row-wise AXPY (c_i += a_ik · b_k) over blocks of k, so a block of B stays in cache while
    /// rows are spread over cores. Simple and exact to float32 accumulation order per element.
    /// </summary>
    public static NpyArray Matmul(NpyArray a, NpyArray b, CancellationToken ct)
    {
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        var A = a.Float32!;
        var B = b.Float32!;
        var C = new float[m * n];
        const int blockK = 256;
        for (var k0 = 0; k0 < k; k0 += blockK)
        {
            ct.ThrowIfCancellationRequested();
            var k1 = Math.Min(k, k0 + blockK);
            Parallel.For(0, m, new ParallelOptions { CancellationToken = ct }, i =>
            {
                var row = C.AsSpan(i * n, n);
                for (var kk = k0; kk < k1; kk++)
                    TensorPrimitives.MultiplyAdd(B.AsSpan(kk * n, n), A[i * k + kk], row, row);
            });
        }
        return NpyArray.FromFloat32(C, m, n);
    }
}
