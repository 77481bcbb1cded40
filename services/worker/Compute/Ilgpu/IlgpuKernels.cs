using System.Reflection;
using ILGPU;

namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// The primitives as ILGPU kernels, following the rules of docs/KERNELS.md: each output element is one thread's own chain of
/// operations in the fixed order the rules give, parallel only across elements (or the fixed 4096-row chunks of
/// the transposed product), so every accelerator and every group/grid shape gives the same bytes. All float
/// arithmetic goes through the kernels' <see cref="IFloatOps"/> type (<see cref="PtxOps"/> on CUDA, <see cref="ManagedOps"/> on the CPU
/// accelerator), never a bare operator.
/// </summary>
public static class IlgpuKernels
{
    /// <summary>
    /// Gemm: a group of T x T threads computes a 4T x 4T block of c, each thread a 4 x 4 register block. T is the
    /// group's width, 16 on a GPU (64 x 64 tiles, 256 threads); the CPU emulator, where each thread of a group is an
    /// OS thread, runs T = 4. The bytes do not depend on T.
    /// </summary>
    public const int Threads = 16;
    public const int Tile = 4 * Threads;

    /// <summary>Steps of k staged in shared memory at a time.</summary>
    public const int DepthTile = 16;

    /// <summary>MatVec: a group of up to 16 rows x 16 lanes; lane l of a row keeps DOT16's lane-l chain.</summary>
    public const int MatVecRows = 16;
    public const int Lanes = 16;

    /// <summary>The transposed product's fixed row chunk (a constant of the algorithm, never of the device).</summary>
    public const int Chunk = 4096;

    /// <summary>
    /// Every kernel (generic method definitions, to be closed over an <see cref="IFloatOps"/>) and whether it is
    /// explicitly grouped (shared memory and barriers): the PTX tests compile them all.
    /// </summary>
    public static IReadOnlyList<(MethodInfo Method, bool Grouped)> All { get; } =
    [
        (Method(nameof(Add)), false),
        (Method(nameof(Gemm)), true),
        (Method(nameof(MatVec)), true),
        (Method(nameof(MatVecPerRow)), false),
        (Method(nameof(MatVecTransposedChunks)), false),
        (Method(nameof(MatVecTransposedSum)), false),
        (Method(nameof(BiasActivation)), false),
        (Method(nameof(NearestCentroid)), false),
    ];

    private static MethodInfo Method(string name) => typeof(IlgpuKernels).GetMethod(name, BindingFlags.Public | BindingFlags.Static)!;

    /// <summary>c[i] = a[i] + b[i].</summary>
    public static void Add<T>(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
        where T : struct, IFloatOps => c[i] = default(T).Add(a[i], b[i]);

    /// <summary>
    /// c[m,n] = a[m,k] · b[k,n] (b[n,k] when transposeB is 1) for the rows from rowOffset covered by the grid.
    /// Tiles of a and b, DepthTile steps of k deep, are staged in shared memory (a stored k-major so that a
    /// thread's four rows and four columns are read without bank conflicts); every thread then continues its 16
    /// sums through those steps in ascending k, one fma each: s = fma(a[i,p], b[p,j], s), from +0, never a sum
    /// of block sums. Steps past k are not taken (no padding enters a chain).
    /// </summary>
    public static void Gemm<T>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int k, int n, int transposeB, int rowOffset)
        where T : struct, IFloatOps
    {
        var sharedA = SharedMemory.Allocate<float>(DepthTile * Tile);
        var sharedB = SharedMemory.Allocate<float>(DepthTile * Tile);
        var threads = Group.DimX;
        var tile = 4 * threads;
        int tx = Group.IdxX, ty = Group.IdxY;
        var thread = (ty * threads) + tx;
        var row0 = rowOffset + (Grid.IdxY * tile);
        var col0 = Grid.IdxX * tile;
        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f, c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;
        for (var k0 = 0; k0 < k; k0 += DepthTile)
        {
            // Each thread stages 4·DepthTile/T values of each tile; consecutive threads read consecutive
            // addresses along k (a, and bᵀ) or along n (b).
            for (var e = thread; e < DepthTile * tile; e += threads * threads)
            {
                int row = e / DepthTile, kk = e % DepthTile;
                int gr = row0 + row, gk = k0 + kk;
                sharedA[(kk * tile) + row] = gr < m && gk < k ? a[(gr * k) + gk] : 0f;
                float bv;
                if (transposeB != 0)
                {
                    // e = column·DepthTile + step
                    int gc = col0 + row;
                    bv = gc < n && gk < k ? b[(gc * k) + gk] : 0f;
                    sharedB[(kk * tile) + row] = bv;
                }
                else
                {
                    // e = step·Tile + column
                    int step = e / tile, col = e % tile;
                    int gc = col0 + col, gs = k0 + step;
                    bv = gc < n && gs < k ? b[(gs * n) + gc] : 0f;
                    sharedB[(step * tile) + col] = bv;
                }
            }
            Group.Barrier();
            var steps = k - k0 < DepthTile ? k - k0 : DepthTile;
            for (var kk = 0; kk < steps; kk++)
            {
                var at = kk * tile;
                float a0 = sharedA[at + ty], a1 = sharedA[at + ty + threads], a2 = sharedA[at + ty + (2 * threads)], a3 = sharedA[at + ty + (3 * threads)];
                float b0 = sharedB[at + tx], b1 = sharedB[at + tx + threads], b2 = sharedB[at + tx + (2 * threads)], b3 = sharedB[at + tx + (3 * threads)];
                c00 = default(T).Fma(a0, b0, c00); c01 = default(T).Fma(a0, b1, c01); c02 = default(T).Fma(a0, b2, c02); c03 = default(T).Fma(a0, b3, c03);
                c10 = default(T).Fma(a1, b0, c10); c11 = default(T).Fma(a1, b1, c11); c12 = default(T).Fma(a1, b2, c12); c13 = default(T).Fma(a1, b3, c13);
                c20 = default(T).Fma(a2, b0, c20); c21 = default(T).Fma(a2, b1, c21); c22 = default(T).Fma(a2, b2, c22); c23 = default(T).Fma(a2, b3, c23);
                c30 = default(T).Fma(a3, b0, c30); c31 = default(T).Fma(a3, b1, c31); c32 = default(T).Fma(a3, b2, c32); c33 = default(T).Fma(a3, b3, c33);
            }
            Group.Barrier();
        }
        var r0 = row0 + ty;
        var j0 = col0 + tx;
        Store(c, m, n, threads, r0, j0, c00, c01, c02, c03);
        Store(c, m, n, threads, r0 + threads, j0, c10, c11, c12, c13);
        Store(c, m, n, threads, r0 + (2 * threads), j0, c20, c21, c22, c23);
        Store(c, m, n, threads, r0 + (3 * threads), j0, c30, c31, c32, c33);
    }

    private static void Store(ArrayView<float> c, int m, int n, int stride, int row, int col, float v0, float v1, float v2, float v3)
    {
        if (row >= m)
            return;
        var at = row * n;
        if (col < n)
            c[at + col] = v0;
        if (col + stride < n)
            c[at + col + stride] = v1;
        if (col + (2 * stride) < n)
            c[at + col + (2 * stride)] = v2;
        if (col + (3 * stride) < n)
            c[at + col + (3 * stride)] = v3;
    }

    /// <summary>
    /// y[r] = DOT16(a[r,:], x, cols): lane l of row r runs s[l] = fma(a[r,16t+l], x[16t+l], s[l]) for t ascending
    /// (16 consecutive threads read 16 consecutive floats), then lane 0 folds the 16 lanes by the fixed tree
    /// (8, 4, 2, 1) and continues with the tail columns in ascending order. A group holds Group.DimX / 16 rows
    /// (16 on a GPU; 1 on the CPU emulator, where every thread of a group is an OS thread meeting at barriers).
    /// </summary>
    public static void MatVec<T>(ArrayView<float> a, ArrayView<float> x, ArrayView<float> y, int rows, int cols)
        where T : struct, IFloatOps
    {
        var lanes = SharedMemory.Allocate<float>(MatVecRows * Lanes);
        var lane = Group.IdxX % Lanes;
        var local = Group.IdxX / Lanes;
        var r = (Grid.IdxX * (Group.DimX / Lanes)) + local;
        var q = cols / Lanes;
        var s = 0f;
        if (r < rows)
        {
            var at = r * cols;
            for (var t = 0; t < q; t++)
                s = default(T).Fma(a[at + (t * Lanes) + lane], x[(t * Lanes) + lane], s);
        }
        lanes[Group.IdxX] = s;
        Group.Barrier();
        if (lane == 0 && r < rows)
        {
            var l = local * Lanes;
            float h0 = default(T).Add(lanes[l], lanes[l + 8]), h1 = default(T).Add(lanes[l + 1], lanes[l + 9]);
            float h2 = default(T).Add(lanes[l + 2], lanes[l + 10]), h3 = default(T).Add(lanes[l + 3], lanes[l + 11]);
            float h4 = default(T).Add(lanes[l + 4], lanes[l + 12]), h5 = default(T).Add(lanes[l + 5], lanes[l + 13]);
            float h6 = default(T).Add(lanes[l + 6], lanes[l + 14]), h7 = default(T).Add(lanes[l + 7], lanes[l + 15]);
            float g0 = default(T).Add(h0, h4), g1 = default(T).Add(h1, h5), g2 = default(T).Add(h2, h6), g3 = default(T).Add(h3, h7);
            float f0 = default(T).Add(g0, g2), f1 = default(T).Add(g1, g3);
            var result = default(T).Add(f0, f1);
            var at = r * cols;
            for (var j = q * Lanes; j < cols; j++)
                result = default(T).Fma(a[at + j], x[j], result);
            y[r] = result;
        }
    }

    /// <summary>
    /// The same DOT16 as <see cref="MatVec"/> with one thread doing all 16 lanes of a row: for the CPU emulator,
    /// where groups that meet at barriers cost far more than the arithmetic.
    /// </summary>
    public static void MatVecPerRow<T>(Index1D r, ArrayView<float> a, ArrayView<float> x, ArrayView<float> y, int cols)
        where T : struct, IFloatOps
    {
        var s = LocalMemory.Allocate<float>(Lanes);
        for (var l = 0; l < Lanes; l++)
            s[l] = 0f;
        var at = r * cols;
        var q = cols / Lanes;
        for (var t = 0; t < q; t++)
        {
            for (var l = 0; l < Lanes; l++)
                s[l] = default(T).Fma(a[at + (t * Lanes) + l], x[(t * Lanes) + l], s[l]);
        }
        for (var i = 0; i < 8; i++)
            s[i] = default(T).Add(s[i], s[i + 8]);
        for (var i = 0; i < 4; i++)
            s[i] = default(T).Add(s[i], s[i + 4]);
        for (var i = 0; i < 2; i++)
            s[i] = default(T).Add(s[i], s[i + 2]);
        var result = default(T).Add(s[0], s[1]);
        for (var j = q * Lanes; j < cols; j++)
            result = default(T).Fma(a[at + j], x[j], result);
        y[r] = result;
    }

    /// <summary>
    /// partial[chunk, j] = the chain p = fma(x[r], a[r,j], p) over the chunk's rows ascending, from +0; one
    /// thread per (chunk, column), consecutive threads on consecutive columns.
    /// </summary>
    public static void MatVecTransposedChunks<T>(Index1D index, ArrayView<float> a, ArrayView<float> x, ArrayView<float> partial, int rows, int cols)
        where T : struct, IFloatOps
    {
        int chunk = index / cols, j = index % cols;
        var start = chunk * Chunk;
        var end = start + Chunk < rows ? start + Chunk : rows;
        var p = 0f;
        for (var r = start; r < end; r++)
            p = default(T).Fma(x[r], a[(r * cols) + j], p);
        partial[index] = p;
    }

    /// <summary>y[j] = partial[0,j] + partial[1,j] + ... in ascending chunk order.</summary>
    public static void MatVecTransposedSum<T>(Index1D j, ArrayView<float> partial, ArrayView<float> y, int chunks, int cols)
        where T : struct, IFloatOps
    {
        var s = partial[j];
        for (var c = 1; c < chunks; c++)
            s = default(T).Add(s, partial[(c * cols) + j]);
        y[j] = s;
    }

    /// <summary>c[r,j] = act(c[r,j] + bias[j]); activation is the <see cref="Activation"/> value.</summary>
    public static void BiasActivation<T>(Index1D i, ArrayView<float> c, ArrayView<float> bias, int cols, int activation)
        where T : struct, IFloatOps
    {
        var x = default(T).Add(c[i], bias[i % cols]);
        if (activation == (int)Activation.Relu)
            x = x < 0f ? 0f : x;
        else if (activation == (int)Activation.Tanh)
            x = IlgpuMath.Tanh<T>(x);
        else if (activation == (int)Activation.Sigmoid)
            x = IlgpuMath.Sigmoid<T>(x);
        c[i] = x;
    }

    /// <summary>
    /// labels[i] = argmin over centroids (ascending, strict &lt;: ties to the lower index, NaN never wins) of
    /// s = fma(p[t] - q[t], p[t] - q[t], s) over t ascending, from +0.
    /// </summary>
    public static void NearestCentroid<T>(Index1D i, ArrayView<float> points, ArrayView<float> centroids, ArrayView<int> labels, int d, int k)
        where T : struct, IFloatOps
    {
        var best = float.PositiveInfinity;
        var index = 0;
        var p = i * d;
        for (var c = 0; c < k; c++)
        {
            var q = c * d;
            var s = 0f;
            for (var t = 0; t < d; t++)
            {
                var diff = default(T).Sub(points[p + t], centroids[q + t]);
                s = default(T).Fma(diff, diff, s);
            }
            if (s < best)
            {
                best = s;
                index = c;
            }
        }
        labels[i] = index;
    }
}
