using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Platform.Worker.Compute.Simd;

/// <summary>
/// GotoBLAS-style SGEMM: C is computed in NC×KC blocks of packed B, each split into MC-row blocks of packed A that
/// the threads share out, and every MR×NR tile of C is held in registers for a whole KC run.
/// </summary>
internal static class SimdGemm
{
    // With AVX-512, 8 rows × two zmm columns is 16 accumulators plus two B vectors and a broadcast: 19 of 32
    // registers, and 16 FMAs per 10 loads keeps the FMA pipes busy. Without it, 6 × two vectors uses 15 of the 16
    // ymm (or xmm) registers.
    private static readonly bool Wide = Vector512.IsHardwareAccelerated;
    private static readonly int Mr = Wide ? 8 : 6;
    private static readonly int Nr = Wide ? 2 * Vector512<float>.Count : 2 * Vector<float>.Count;

    // KC×NR of B (32 KB) stays in L1 across the MC/MR tiles of one A block; MC×KC of A (64 KB) stays in L2;
    // the KC×NC block of B (1 MB) sits in L3 and is shared by every thread. Measured best on Zen 4.
    private const int Kc = 256;
    private const int Mc = 64;
    private const int Nc = 1024;

    // Each parallel step does at most this many flops between progress reports (~15 ms on AVX-512, ~150 ms on one
    // SSE core; emulated vectors are ~50× slower again) and writes at most this much of C, since with a short k the
    // product is bound by memory rather than flops.
    private static readonly double StepFlops = Vector.IsHardwareAccelerated ? 2e9 : 4e7;
    private const int StepOutput = 1 << 22;

    // Below this many flops (about 170³) a product is done on the calling thread: fork/join costs more than it saves.
    private const double ParallelFlops = 1e7;

    public static void Multiply(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress, int threads)
    {
        // The micro-kernel writes C without bounds checks.
        ArgumentOutOfRangeException.ThrowIfLessThan(c.Length, (long)m * n, nameof(c));
        if (k == 0)
        {
            // An empty sum is +0.
            c.Span[..(m * n)].Clear();
            return;
        }
        var total = 2.0 * m * n * k;
        var parallel = threads > 1 && total >= ParallelFlops;
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = progress.CancellationToken };
        var packedB = ArrayPool<float>.Shared.Rent(Math.Min(Kc, k) * RoundUp(Math.Min(Nc, n), Nr));
        try
        {
            var done = 0.0;
            for (var jc = 0; jc < n; jc += Nc)
            {
                var nc = Math.Min(Nc, n - jc);
                var panels = (nc + Nr - 1) / Nr;
                for (var pc = 0; pc < k; pc += Kc)
                {
                    var kc = Math.Min(Kc, k - pc);
                    int j0 = jc, p0 = pc;
                    Run(parallel, panels, options, panel => PackB(b.Span, packedB, n, k, transposeB, j0, p0, nc, kc, panel));

                    var stepRows = Math.Max(Mc, (int)Math.Min(StepFlops / (2.0 * nc * kc), StepOutput / nc) / Mc * Mc);
                    for (var ic = 0; ic < m; ic += stepRows)
                    {
                        var rows = Math.Min(stepRows, m - ic);
                        var rowBlocks = (rows + Mc - 1) / Mc;
                        // Too few row blocks to balance the threads: split the columns too (A is then packed once per split).
                        var colSplits = parallel ? Math.Clamp((4 * threads + rowBlocks - 1) / rowBlocks, 1, panels) : 1;
                        var splitPanels = (panels + colSplits - 1) / colSplits;
                        colSplits = (panels + splitPanels - 1) / splitPanels;
                        int i0 = ic;
                        Run(parallel, rowBlocks * colSplits, options, item =>
                        {
                            var i = i0 + item / colSplits * Mc;
                            var firstPanel = item % colSplits * splitPanels;
                            Block(a.Span, packedB, c.Span, k, n, i, Math.Min(Mc, i0 + rows - i), j0, firstPanel,
                                Math.Min(splitPanels, panels - firstPanel), nc, p0, kc);
                        });
                        done += 2.0 * rows * nc * kc;
                        progress.Report(done / total);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packedB);
        }
    }

    private static void Run(bool parallel, int count, ParallelOptions options, Action<int> body)
    {
        if (parallel && count > 1)
        {
            Parallel.For(0, count, options, body);
            return;
        }
        for (var i = 0; i < count; i++)
            body(i);
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    /// <summary>Packs columns [panel·NR, +NR) of the KC×NC block into NR-wide rows, zero-padded past n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB(ReadOnlySpan<float> b, float[] packed, int n, int k, bool transposeB, int jc, int pc, int nc, int kc, int panel)
    {
        var nr = Nr;
        var j = jc + panel * nr;
        var cols = Math.Min(nr, jc + nc - j);
        var dst = packed.AsSpan(panel * nr * kc, nr * kc);
        if (cols < nr)
            dst.Clear();
        if (transposeB)
        {
            // b is [n,k]: each column of the panel is a contiguous run of a row of b.
            for (var col = 0; col < cols; col++)
            {
                var src = b.Slice((j + col) * k + pc, kc);
                for (var p = 0; p < kc; p++)
                    dst[p * nr + col] = src[p];
            }
        }
        else
        {
            for (var p = 0; p < kc; p++)
                b.Slice((pc + p) * n + j, cols).CopyTo(dst.Slice(p * nr));
        }
    }

    /// <summary>Packs rows [i, i+mc) × [pc, pc+kc) of A into MR-tall column-major panels, zero-padded past mc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA(ReadOnlySpan<float> a, Span<float> dst, int k, int i, int mc, int pc, int kc)
    {
        var mr = Mr;
        for (var ir = 0; ir < mc; ir += mr)
        {
            var panel = dst.Slice(ir * kc, mr * kc);
            var rows = Math.Min(mr, mc - ir);
            if (rows < mr)
                panel.Clear();
            for (var r = 0; r < rows; r++)
            {
                var src = a.Slice((i + ir + r) * k + pc, kc);
                for (var p = 0; p < kc; p++)
                    panel[p * mr + r] = src[p];
            }
        }
    }

    /// <summary>C[i.., jc + firstPanel·NR ..] (+)= packed A block × the given panels of packed B.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(ReadOnlySpan<float> a, float[] packedB, Span<float> c, int k, int n, int i, int mc, int jc, int firstPanel, int panelCount, int nc, int pc, int kc)
    {
        int mr = Mr, nr = Nr;
        var accumulate = pc > 0;
        var packedA = ArrayPool<float>.Shared.Rent(RoundUp(mc, mr) * kc);
        try
        {
            PackA(a, packedA, k, i, mc, pc, kc);
            Span<float> edge = stackalloc float[mr * nr];
            ref var aRef = ref MemoryMarshal.GetArrayDataReference(packedA);
            ref var bRef = ref MemoryMarshal.GetArrayDataReference(packedB);
            ref var cRef = ref MemoryMarshal.GetReference(c);
            for (var panel = firstPanel; panel < firstPanel + panelCount; panel++)
            {
                var j = panel * nr;
                var cols = Math.Min(nr, nc - j);
                ref var bPanel = ref Unsafe.Add(ref bRef, j * kc);
                for (var ir = 0; ir < mc; ir += mr)
                {
                    var rows = Math.Min(mr, mc - ir);
                    ref var aPanel = ref Unsafe.Add(ref aRef, ir * kc);
                    ref var cTile = ref Unsafe.Add(ref cRef, (nint)(i + ir) * n + jc + j);
                    if (rows == mr && cols == nr)
                    {
                        Tile(ref aPanel, ref bPanel, kc, ref cTile, n, accumulate);
                        continue;
                    }
                    // Edge tile: compute the full tile aside, starting from C's partial sums when continuing, and
                    // write back only the part inside C.
                    if (accumulate)
                    {
                        for (var r = 0; r < rows; r++)
                            c.Slice((i + ir + r) * n + jc + j, cols).CopyTo(edge.Slice(r * nr, cols));
                    }
                    Tile(ref aPanel, ref bPanel, kc, ref MemoryMarshal.GetReference(edge), nr, accumulate);
                    for (var r = 0; r < rows; r++)
                        edge.Slice(r * nr, cols).CopyTo(c.Slice((i + ir + r) * n + jc + j, cols));
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packedA);
        }
    }

    private static void Tile(ref float a, ref float b, int kc, ref float c, int ldc, bool accumulate)
    {
        if (Wide)
            Tile8x32(ref a, ref b, kc, ref c, ldc, accumulate);
        else
            Tile6x2V(ref a, ref b, kc, ref c, ldc, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x32(ref float a, ref float b, int kc, ref float c, int ldc, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        if (accumulate)
        {
            // Continue each element's chain from its partial sum over the earlier k blocks (never add block sums).
            Load(ref c, out c00, out c01);
            Load(ref Unsafe.Add(ref c, ldc), out c10, out c11);
            Load(ref Unsafe.Add(ref c, 2 * ldc), out c20, out c21);
            Load(ref Unsafe.Add(ref c, 3 * ldc), out c30, out c31);
            Load(ref Unsafe.Add(ref c, 4 * ldc), out c40, out c41);
            Load(ref Unsafe.Add(ref c, 5 * ldc), out c50, out c51);
            Load(ref Unsafe.Add(ref c, 6 * ldc), out c60, out c61);
            Load(ref Unsafe.Add(ref c, 7 * ldc), out c70, out c71);
        }
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector512.LoadUnsafe(ref b);
            var b1 = Vector512.LoadUnsafe(ref b, 16);
            var x = Vector512.Create(a);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(Unsafe.Add(ref a, 1));
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(Unsafe.Add(ref a, 2));
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(Unsafe.Add(ref a, 3));
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(Unsafe.Add(ref a, 4));
            c40 = Vector512.FusedMultiplyAdd(x, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(Unsafe.Add(ref a, 5));
            c50 = Vector512.FusedMultiplyAdd(x, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(Unsafe.Add(ref a, 6));
            c60 = Vector512.FusedMultiplyAdd(x, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(Unsafe.Add(ref a, 7));
            c70 = Vector512.FusedMultiplyAdd(x, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a = ref Unsafe.Add(ref a, 8);
            b = ref Unsafe.Add(ref b, 32);
        }
        Store(ref c, c00, c01);
        Store(ref Unsafe.Add(ref c, ldc), c10, c11);
        Store(ref Unsafe.Add(ref c, 2 * ldc), c20, c21);
        Store(ref Unsafe.Add(ref c, 3 * ldc), c30, c31);
        Store(ref Unsafe.Add(ref c, 4 * ldc), c40, c41);
        Store(ref Unsafe.Add(ref c, 5 * ldc), c50, c51);
        Store(ref Unsafe.Add(ref c, 6 * ldc), c60, c61);
        Store(ref Unsafe.Add(ref c, 7 * ldc), c70, c71);
    }

    private static void Load(ref float row, out Vector512<float> lo, out Vector512<float> hi)
    {
        lo = Vector512.LoadUnsafe(ref row);
        hi = Vector512.LoadUnsafe(ref row, 16);
    }

    private static void Store(ref float row, Vector512<float> lo, Vector512<float> hi)
    {
        lo.StoreUnsafe(ref row);
        hi.StoreUnsafe(ref row, 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x2V(ref float a, ref float b, int kc, ref float c, int ldc, bool accumulate)
    {
        var w = (nuint)Vector<float>.Count;
        Vector<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (accumulate)
        {
            Load(ref c, out c00, out c01);
            Load(ref Unsafe.Add(ref c, ldc), out c10, out c11);
            Load(ref Unsafe.Add(ref c, 2 * ldc), out c20, out c21);
            Load(ref Unsafe.Add(ref c, 3 * ldc), out c30, out c31);
            Load(ref Unsafe.Add(ref c, 4 * ldc), out c40, out c41);
            Load(ref Unsafe.Add(ref c, 5 * ldc), out c50, out c51);
        }
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector.LoadUnsafe(ref b);
            var b1 = Vector.LoadUnsafe(ref b, w);
            var x = new Vector<float>(a);
            c00 = Vector.FusedMultiplyAdd(x, b0, c00);
            c01 = Vector.FusedMultiplyAdd(x, b1, c01);
            x = new Vector<float>(Unsafe.Add(ref a, 1));
            c10 = Vector.FusedMultiplyAdd(x, b0, c10);
            c11 = Vector.FusedMultiplyAdd(x, b1, c11);
            x = new Vector<float>(Unsafe.Add(ref a, 2));
            c20 = Vector.FusedMultiplyAdd(x, b0, c20);
            c21 = Vector.FusedMultiplyAdd(x, b1, c21);
            x = new Vector<float>(Unsafe.Add(ref a, 3));
            c30 = Vector.FusedMultiplyAdd(x, b0, c30);
            c31 = Vector.FusedMultiplyAdd(x, b1, c31);
            x = new Vector<float>(Unsafe.Add(ref a, 4));
            c40 = Vector.FusedMultiplyAdd(x, b0, c40);
            c41 = Vector.FusedMultiplyAdd(x, b1, c41);
            x = new Vector<float>(Unsafe.Add(ref a, 5));
            c50 = Vector.FusedMultiplyAdd(x, b0, c50);
            c51 = Vector.FusedMultiplyAdd(x, b1, c51);
            a = ref Unsafe.Add(ref a, 6);
            b = ref Unsafe.Add(ref b, 2 * w);
        }
        Store(ref c, c00, c01);
        Store(ref Unsafe.Add(ref c, ldc), c10, c11);
        Store(ref Unsafe.Add(ref c, 2 * ldc), c20, c21);
        Store(ref Unsafe.Add(ref c, 3 * ldc), c30, c31);
        Store(ref Unsafe.Add(ref c, 4 * ldc), c40, c41);
        Store(ref Unsafe.Add(ref c, 5 * ldc), c50, c51);
    }

    private static void Load(ref float row, out Vector<float> lo, out Vector<float> hi)
    {
        var w = (nuint)Vector<float>.Count;
        lo = Vector.LoadUnsafe(ref row);
        hi = Vector.LoadUnsafe(ref row, w);
    }

    private static void Store(ref float row, Vector<float> lo, Vector<float> hi)
    {
        var w = (nuint)Vector<float>.Count;
        lo.StoreUnsafe(ref row);
        hi.StoreUnsafe(ref row, w);
    }
}
