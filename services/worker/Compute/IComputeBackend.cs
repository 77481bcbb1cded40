using Platform.Contracts.Messages;

namespace Platform.Worker.Compute;

/// <summary>
/// One way of running the catalogue's numeric building blocks (the managed SIMD backend, the OpenCL backend,
/// the ILGPU backend for CUDA GPUs). <see cref="KernelRunner"/> builds every catalogue kernel from
/// these primitives, so a backend only has to make them fast and exact.
/// All matrices are dense, row-major float32. Arguments have been validated before a backend sees them.
/// <para>
/// Exact means bitwise: every implementation performs, for every output element, the float operations that
/// docs/KERNELS.md ("Bitwise reproducibility") prescribes, in that order, with fma where it says fma and nowhere
/// else, IEEE subnormals and round-to-nearest-even, so that every backend and every thread count gives the same
/// bytes. Parallelism and vectors may only go across output elements (or the fixed chunks below).
/// </para>
/// </summary>
public interface IComputeBackend : IDisposable
{
    /// <summary>"simd" or "opencl": what the worker reports and logs.</summary>
    string Name { get; }

    /// <summary>The device this backend computes on, as reported in WorkerOnline.</summary>
    DeviceInfo Device { get; }

    /// <summary>The largest working set (inputs plus outputs, bytes) the device can hold.</summary>
    long MemoryBytes { get; }

    /// <summary>c = a + b, element-wise: c[i] = a[i] + b[i], one rounded add.</summary>
    void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c);

    /// <summary>
    /// c[m,n] = a[m,k] · b[k,n], or a · bᵀ when <paramref name="transposeB"/> (then b is [n,k]).
    /// Each element is s = +0; s = fma(a[i,p], b[p,j], s) for p = 0..k-1 in order; blocking over k continues from
    /// the stored partial sum, never adds block sums. k = 0 gives +0.
    /// Long products report progress and check cancellation at least every few hundred milliseconds.
    /// </summary>
    void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress);

    /// <summary>
    /// y[rows] = a[rows,cols] · x[cols], each y[r] the fixed 16-lane DOT16 of docs/KERNELS.md; or y[cols] = aᵀ · x[rows]
    /// when <paramref name="transpose"/>: rows cut into fixed chunks of 4096, each chunk's partial an fma chain over
    /// its rows in order, the partials added in chunk order (no rows: +0).
    /// </summary>
    void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose);

    /// <summary>
    /// c[rows,cols] = activation(c + bias) with bias[cols] broadcast over rows: one rounded add, then relu
    /// (x &lt; 0 ? +0 : x), <see cref="ReproMath.Tanh"/> or <see cref="ReproMath.Sigmoid"/>, exactly.
    /// </summary>
    void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation);

    /// <summary>
    /// labels[i] = the index of the centroid nearest (squared L2) to points[i]; ties go to the lower index. Each
    /// distance is s = +0; s = fma(p[t] - q[t], p[t] - q[t], s) over t in order; the scan keeps strictly smaller
    /// distances from +Inf and index 0, so NaN never wins.
    /// </summary>
    void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels);
}

/// <summary>Element-wise functions applied after a bias.</summary>
public enum Activation
{
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

/// <summary>
/// Cancellation and progress for one long primitive. <see cref="Report"/> throws once the attempt is
/// cancelled, so a backend stops within one step of its loop.
/// </summary>
public sealed class ComputeProgress(CancellationToken cancellationToken, Action<double>? report = null)
{
    public static ComputeProgress None { get; } = new(CancellationToken.None);

    public CancellationToken CancellationToken => cancellationToken;

    /// <summary>Reports the fraction done (0..1) and stops the computation if the attempt was cancelled.</summary>
    public void Report(double fraction)
    {
        cancellationToken.ThrowIfCancellationRequested();
        report?.Invoke(Math.Clamp(fraction, 0, 1));
    }
}
