using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Platform.Contracts.Messages;

namespace Platform.Worker.Compute.Simd;

/// <summary>The managed backend: vectorised with System.Runtime.Intrinsics and spread over the CPU's cores.</summary>
public sealed class SimdBackend : IComputeBackend
{
    // Element-wise and matrix-vector work is memory-bound: below ~1 MB, fork/join costs more than a second core gains.
    private const int ParallelElements = 1 << 18;

    // The fixed row chunk of the transposed matrix-vector product (docs/KERNELS.md): a constant of the algorithm,
    // never derived from the thread count.
    public const int MatVecChunkRows = 4096;

    // Points one parallel item labels: enough to amortise scheduling, few enough to balance the cores.
    private const int PointChunk = 1024;

    private readonly int threads;
    private readonly ParallelOptions options;

    public SimdBackend(int? threads = null)
    {
        this.threads = threads ?? Environment.ProcessorCount;
        ArgumentOutOfRangeException.ThrowIfLessThan(this.threads, 1, nameof(threads));
        options = new ParallelOptions { MaxDegreeOfParallelism = this.threads };
        MemoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        Device = new DeviceInfo
        {
            Kind = "cpu",
            Name = $"{CpuModel() ?? $"{Environment.ProcessorCount}-core CPU"} ({Environment.ProcessorCount} cores, {VectorIsa()})",
            Backend = Name,
            MemoryMb = MemoryBytes / (1024 * 1024),
        };
    }

    public string Name => "simd";

    public DeviceInfo Device { get; }

    public long MemoryBytes { get; }

    public void Dispose()
    {
    }

    public void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c) =>
        ForRanges(c.Length, 1, (start, count) =>
            TensorPrimitives.Add(a.Span.Slice(start, count), b.Span.Slice(start, count), c.Span.Slice(start, count)));

    public void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress) =>
        SimdGemm.Multiply(a, b, c, m, k, n, transposeB, progress, threads);

    public void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose)
    {
        // The kernels read a without bounds checks.
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)rows * cols, nameof(a));
        if (!transpose)
        {
            // y[r] = DOT16(a[r,:], x): rows are independent, so how they are shared out changes nothing.
            ForRanges(rows, cols, (start, count) =>
            {
                ReadOnlySpan<float> matrix = a.Span, vector = x.Span[..cols];
                var result = y.Span;
                var r = start;
                for (; r + 4 <= start + count; r += 4)
                    ReproVector.Dot16x4(matrix.Slice(r * cols, 4 * cols), cols, vector, result.Slice(r, 4));
                for (; r < start + count; r++)
                    result[r] = ReproVector.Dot16(matrix.Slice(r * cols, cols), vector);
            });
            return;
        }

        // Aᵀ·x: rows are cut into fixed chunks of MatVecChunkRows; each chunk's partial for column j is an fma chain
        // over its rows in order, and y[j] = p0 + p1 + ... in chunk order. The chunks (and, within one, ranges of
        // columns) are what the threads share, so the result is the same for any thread count.
        var output = y.Span[..cols];
        var chunks = (rows + MatVecChunkRows - 1) / MatVecChunkRows;
        if (chunks == 0)
        {
            output.Clear();
            return;
        }
        var partials = ArrayPool<float>.Shared.Rent(Math.Max(1, (chunks - 1) * cols));
        try
        {
            // Whole chunks when there are enough to balance the threads (a column range of a row reads part of a
            // cache line); else column ranges too, each a multiple of the vector width.
            var w = Vector<float>.Count;
            var columnRanges = (long)rows * cols < ParallelElements || chunks >= 2 * threads ? 1
                : Math.Clamp((2 * threads + chunks - 1) / chunks, 1, Math.Max(1, cols / (4 * w)));
            var columnsPerRange = (cols + columnRanges - 1) / columnRanges;
            columnsPerRange = (columnsPerRange + w - 1) / w * w;
            columnRanges = (cols + columnsPerRange - 1) / columnsPerRange;
            var items = (long)rows * cols < ParallelElements ? 1 : chunks * columnRanges;
            ForBands(chunks * columnRanges, items, (_, first, count) =>
            {
                for (var item = first; item < first + count; item++)
                {
                    int chunk = item / columnRanges, j0 = item % columnRanges * columnsPerRange;
                    var width = Math.Min(columnsPerRange, cols - j0);
                    var sum = chunk == 0 ? y.Span.Slice(j0, width) : partials.AsSpan(((chunk - 1) * cols) + j0, width);
                    var r0 = chunk * MatVecChunkRows;
                    AccumulateRows(a.Span, x.Span, sum, cols, j0, r0, Math.Min(r0 + MatVecChunkRows, rows));
                }
            });
            for (var chunk = 1; chunk < chunks; chunk++)
                TensorPrimitives.Add(output, partials.AsSpan((chunk - 1) * cols, cols), output);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(partials);
        }
    }

    public void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation)
    {
        if (!Enum.IsDefined(activation))
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
        ForRanges(rows, cols, (start, count) =>
        {
            var b = bias.Span[..cols];
            var block = c.Span.Slice(start * cols, count * cols);
            for (var row = 0; row < block.Length; row += cols)
                BiasActivateRow(block.Slice(row, cols), b, activation);
        });
    }

    /// <summary>
    /// row[j] = act(row[j] + bias[j]): one rounded add, then the activation of docs/KERNELS.md, lane by lane
    /// (ReproVector) and for the tail element by element (ReproMath), which are the same function.
    /// </summary>
    private static void BiasActivateRow(Span<float> row, ReadOnlySpan<float> bias, Activation activation)
    {
        var w = Vector<float>.Count;
        ref var r = ref MemoryMarshal.GetReference(row);
        ref var b = ref MemoryMarshal.GetReference(bias[..row.Length]);
        var j = 0;
        for (; j + w <= row.Length; j += w)
        {
            var v = Vector.LoadUnsafe(ref r, (nuint)j) + Vector.LoadUnsafe(ref b, (nuint)j);
            v = activation switch
            {
                Activation.Relu => Vector.ConditionalSelect(Vector.LessThan(v, Vector<float>.Zero), Vector<float>.Zero, v),
                Activation.Tanh => ReproVector.Tanh(v),
                Activation.Sigmoid => ReproVector.Sigmoid(v),
                _ => v,
            };
            v.StoreUnsafe(ref r, (nuint)j);
        }
        for (; j < row.Length; j++)
        {
            var v = row[j] + bias[j];
            row[j] = activation switch
            {
                Activation.Relu => v < 0f ? 0f : v,
                Activation.Tanh => ReproMath.Tanh(v),
                Activation.Sigmoid => ReproMath.Sigmoid(v),
                _ => v,
            };
        }
    }

    public void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels)
    {
        // The kernel reads points without bounds checks.
        ArgumentOutOfRangeException.ThrowIfLessThan(points.Length, (long)n * d, nameof(points));

        // A vector holds one coordinate of W centroids, stored [block][dimension][lane], so one point meets W centroids
        // per instruction and a block streams contiguously. Lane l holds centroids [l·blocks, (l+1)·blocks): a tie
        // keeps the earlier centroid within a lane and the first lane across them, so it goes to the lower index.
        // Lanes past k hold NaN, which never compares less.
        var w = Vector<float>.Count;
        var blocks = (k + w - 1) / w;
        var packed = ArrayPool<float>.Shared.Rent(blocks * d * w);
        try
        {
            var source = centroids.Span;
            for (var block = 0; block < blocks; block++)
            {
                for (var j = 0; j < d; j++)
                {
                    for (var lane = 0; lane < w; lane++)
                    {
                        var centroid = lane * blocks + block;
                        packed[(block * d + j) * w + lane] = centroid < k ? source[centroid * d + j] : float.NaN;
                    }
                }
            }
            var chunks = (n + PointChunk - 1) / PointChunk;
            var parallel = threads > 1 && (long)n * d * k >= ParallelElements ? chunks : 1;
            ForBands(chunks, parallel, (_, start, count) =>
            {
                var first = start * PointChunk;
                LabelPoints(points.Span, packed, d, blocks, labels.Span, first, Math.Min(count * PointChunk, n - first));
            });
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packed);
        }
    }

    /// <summary>
    /// sum[j - j0] = fma chain of x[r]·A[r, j] over rows [start, end) in order, from +0, for the columns [j0, j0 +
    /// sum.Length). Four rows a pass (a narrow A, the usual tall data matrix, would otherwise pay a load and store of
    /// sum per row); each lane still sees its rows one fma at a time, in order, and so does the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateRows(ReadOnlySpan<float> a, ReadOnlySpan<float> x, Span<float> sum, int cols, int j0, int start, int end)
    {
        sum.Clear();
        var width = sum.Length;
        var w = Vector<float>.Count;
        ref var s = ref MemoryMarshal.GetReference(sum);
        // The caller checked a.Length >= rows·cols.
        ref var matrix = ref MemoryMarshal.GetReference(a);
        var r = start;
        for (; r + 4 <= end; r += 4)
        {
            ref var r0 = ref Unsafe.Add(ref matrix, ((nint)r * cols) + j0);
            ref var r1 = ref Unsafe.Add(ref r0, cols);
            ref var r2 = ref Unsafe.Add(ref r1, cols);
            ref var r3 = ref Unsafe.Add(ref r2, cols);
            float x0 = x[r], x1 = x[r + 1], x2 = x[r + 2], x3 = x[r + 3];
            var j = 0;
            if (width >= w)
            {
                Vector<float> v0 = Vector.Create(x0), v1 = Vector.Create(x1), v2 = Vector.Create(x2), v3 = Vector.Create(x3);
                for (; j <= width - w; j += w)
                {
                    var offset = (nuint)j;
                    var t = Vector.FusedMultiplyAdd(v0, Vector.LoadUnsafe(ref r0, offset), Vector.LoadUnsafe(ref s, offset));
                    t = Vector.FusedMultiplyAdd(v1, Vector.LoadUnsafe(ref r1, offset), t);
                    t = Vector.FusedMultiplyAdd(v2, Vector.LoadUnsafe(ref r2, offset), t);
                    Vector.FusedMultiplyAdd(v3, Vector.LoadUnsafe(ref r3, offset), t).StoreUnsafe(ref s, offset);
                }
            }
            for (; j < width; j++)
            {
                var t = MathF.FusedMultiplyAdd(x0, Unsafe.Add(ref r0, j), sum[j]);
                t = MathF.FusedMultiplyAdd(x1, Unsafe.Add(ref r1, j), t);
                t = MathF.FusedMultiplyAdd(x2, Unsafe.Add(ref r2, j), t);
                sum[j] = MathF.FusedMultiplyAdd(x3, Unsafe.Add(ref r3, j), t);
            }
        }
        for (; r < end; r++)
        {
            var row = a.Slice((r * cols) + j0, width);
            for (var j = 0; j < width; j++)
                sum[j] = MathF.FusedMultiplyAdd(x[r], row[j], sum[j]);
        }
    }

    /// <summary>
    /// Labels points eight at a time: eight independent sums cover the FMA latency, and each centroid vector loaded
    /// serves all eight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LabelPoints(ReadOnlySpan<float> points, float[] packed, int d, int blocks, Span<int> labels, int start, int count)
    {
        var w = Vector<float>.Count;
        ref var centroidRef = ref MemoryMarshal.GetArrayDataReference(packed);
        ref var pointRef = ref MemoryMarshal.GetReference(points);
        var last = start + count - 1;
        for (var i = start; i <= last; i += 8)
        {
            // Past the last point, repeat it: the extra sums are computed and dropped.
            ref var p0 = ref Unsafe.Add(ref pointRef, i * d);
            ref var p1 = ref Unsafe.Add(ref pointRef, Math.Min(i + 1, last) * d);
            ref var p2 = ref Unsafe.Add(ref pointRef, Math.Min(i + 2, last) * d);
            ref var p3 = ref Unsafe.Add(ref pointRef, Math.Min(i + 3, last) * d);
            ref var p4 = ref Unsafe.Add(ref pointRef, Math.Min(i + 4, last) * d);
            ref var p5 = ref Unsafe.Add(ref pointRef, Math.Min(i + 5, last) * d);
            ref var p6 = ref Unsafe.Add(ref pointRef, Math.Min(i + 6, last) * d);
            ref var p7 = ref Unsafe.Add(ref pointRef, Math.Min(i + 7, last) * d);
            var best0 = new Vector<float>(float.PositiveInfinity);
            Vector<float> best1 = best0, best2 = best0, best3 = best0, best4 = best0, best5 = best0, best6 = best0, best7 = best0;
            Vector<int> index0 = default, index1 = default, index2 = default, index3 = default;
            Vector<int> index4 = default, index5 = default, index6 = default, index7 = default;
            for (var block = 0; block < blocks; block++)
            {
                Vector<float> sum0 = default, sum1 = default, sum2 = default, sum3 = default;
                Vector<float> sum4 = default, sum5 = default, sum6 = default, sum7 = default;
                ref var c = ref Unsafe.Add(ref centroidRef, block * d * w);
                // A native-sized index lets the JIT fold each coordinate load into the subtraction as a broadcast.
                for (nint j = 0; j < d; j++)
                {
                    var centroid = Vector.LoadUnsafe(ref c, (nuint)(j * w));
                    sum0 = SquareAdd(centroid, ref Unsafe.Add(ref p0, j), sum0);
                    sum1 = SquareAdd(centroid, ref Unsafe.Add(ref p1, j), sum1);
                    sum2 = SquareAdd(centroid, ref Unsafe.Add(ref p2, j), sum2);
                    sum3 = SquareAdd(centroid, ref Unsafe.Add(ref p3, j), sum3);
                    sum4 = SquareAdd(centroid, ref Unsafe.Add(ref p4, j), sum4);
                    sum5 = SquareAdd(centroid, ref Unsafe.Add(ref p5, j), sum5);
                    sum6 = SquareAdd(centroid, ref Unsafe.Add(ref p6, j), sum6);
                    sum7 = SquareAdd(centroid, ref Unsafe.Add(ref p7, j), sum7);
                }
                var ids = Vector<int>.Indices * blocks + new Vector<int>(block);
                Keep(sum0, ids, ref best0, ref index0);
                Keep(sum1, ids, ref best1, ref index1);
                Keep(sum2, ids, ref best2, ref index2);
                Keep(sum3, ids, ref best3, ref index3);
                Keep(sum4, ids, ref best4, ref index4);
                Keep(sum5, ids, ref best5, ref index5);
                Keep(sum6, ids, ref best6, ref index6);
                Keep(sum7, ids, ref best7, ref index7);
            }
            ReadOnlySpan<int> nearest = [Lowest(best0, index0), Lowest(best1, index1), Lowest(best2, index2), Lowest(best3, index3),
                Lowest(best4, index4), Lowest(best5, index5), Lowest(best6, index6), Lowest(best7, index7)];
            nearest[..Math.Min(8, last + 1 - i)].CopyTo(labels[i..]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> SquareAdd(Vector<float> centroid, ref float coordinate, Vector<float> sum)
    {
        // (q - p)² is exactly (p - q)², so this is the rule's fma(diff, diff, s).
        var t = centroid - Vector.Create(coordinate);
        return Vector.FusedMultiplyAdd(t, t, sum);
    }

    /// <summary>Strictly less, so within a lane the earlier (lower-index) centroid keeps a tie.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Keep(Vector<float> distance, Vector<int> ids, ref Vector<float> best, ref Vector<int> index)
    {
        var less = Vector.LessThan(distance, best);
        best = Vector.ConditionalSelect(less, distance, best);
        index = Vector.ConditionalSelect(less, ids, index);
    }

    /// <summary>The centroid held by the first smallest lane: lanes hold ascending ranges, so it is the lowest index.</summary>
    private static int Lowest(Vector<float> best, Vector<int> index) => index[Vector.IndexOf(best, MinAcross(best))];

    private static float MinAcross(Vector<float> v)
    {
        var quarter = Vector<float>.Count switch
        {
            4 => v.AsVector128(),
            8 => Vector128.Min(v.AsVector256().GetLower(), v.AsVector256().GetUpper()),
            _ => Vector128.Min(
                Vector128.Min(v.AsVector512().GetLower().GetLower(), v.AsVector512().GetLower().GetUpper()),
                Vector128.Min(v.AsVector512().GetUpper().GetLower(), v.AsVector512().GetUpper().GetUpper())),
        };
        quarter = Vector128.Min(quarter, Vector128.Shuffle(quarter, Vector128.Create(2, 3, 0, 1)));
        return MathF.Min(quarter.GetElement(0), quarter.GetElement(1));
    }

    /// <summary>Runs body(start, length) over [0, count), in a few ranges on the pool when there is enough work to share.</summary>
    private void ForRanges(int count, int elementsPerItem, Action<int, int> body) =>
        ForBands(count, (long)count * elementsPerItem < ParallelElements ? 1 : 4 * threads, (_, start, length) => body(start, length));

    /// <summary>Runs body(band, start, length) over [0, count) split into at most <paramref name="bands"/> bands.</summary>
    private void ForBands(int count, int bands, Action<int, int, int> body)
    {
        bands = threads == 1 ? 1 : Math.Clamp(bands, 1, Math.Max(1, count));
        if (bands == 1)
        {
            body(0, 0, count);
            return;
        }
        Parallel.For(0, bands, options, band =>
        {
            var start = (int)((long)count * band / bands);
            body(band, start, (int)((long)count * (band + 1) / bands) - start);
        });
    }

    private static string? CpuModel()
    {
        const string CpuInfo = "/proc/cpuinfo";
        if (!File.Exists(CpuInfo))
            return null;
        try
        {
            return File.ReadLines(CpuInfo)
                .Where(line => line.StartsWith("model name", StringComparison.Ordinal) && line.Contains(':', StringComparison.Ordinal))
                .Select(line => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())
                .FirstOrDefault(name => name.Length > 0);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string VectorIsa() =>
        Vector512.IsHardwareAccelerated ? "AVX-512"
        : Vector256.IsHardwareAccelerated ? "AVX2"
        : Vector.IsHardwareAccelerated ? $"{Vector<byte>.Count * 8}-bit SIMD"
        : "no SIMD";
}
