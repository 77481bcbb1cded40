using Platform.Contracts.Messages;

namespace Platform.Worker.Compute;

/// <summary>
/// The reproducibility rules of docs/KERNELS.md read literally: every primitive as plain, slow, single-threaded C#, one output element at a
/// time, in exactly the order the rules give. RyuJIT never contracts a * b + c, and MathF.FusedMultiplyAdd is the
/// correctly rounded fma, so these are the bytes every backend must produce. KernelRunner builds the catalogue
/// kernels on it like on any backend. The tests hold every backend to it, and each node checks its own backends
/// against it at start (<see cref="ArithmeticSelfTest"/>) before it claims the reproducible revision.
/// </summary>
public sealed class RuleReference : IComputeBackend
{
    public const int TransposedChunk = 4096;

    public string Name => "rules";

    public DeviceInfo Device { get; } = new() { Kind = "cpu", Name = "docs/KERNELS.md rules, literally", Backend = "rules", MemoryMb = 1024 };

    public long MemoryBytes => 1L << 30;

    public void Dispose()
    {
    }

    public void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c)
    {
        for (var i = 0; i < c.Length; i++)
            c.Span[i] = a.Span[i] + b.Span[i];
    }

    public void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress)
    {
        ReadOnlySpan<float> x = a.Span, y = b.Span;
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var s = 0f;
                for (var p = 0; p < k; p++)
                    s = MathF.FusedMultiplyAdd(x[(i * k) + p], transposeB ? y[(j * k) + p] : y[(p * n) + j], s);
                c.Span[(i * n) + j] = s;
            }
        }
    }

    public void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose)
    {
        if (!transpose)
        {
            for (var r = 0; r < rows; r++)
                y.Span[r] = Dot16(a.Span.Slice(r * cols, cols), x.Span[..cols]);
            return;
        }
        var chunks = (rows + TransposedChunk - 1) / TransposedChunk;
        for (var j = 0; j < cols; j++)
        {
            var total = 0f;
            for (var chunk = 0; chunk < chunks; chunk++)
            {
                var p = 0f;
                for (var r = chunk * TransposedChunk; r < Math.Min((chunk + 1) * TransposedChunk, rows); r++)
                    p = MathF.FusedMultiplyAdd(x.Span[r], a.Span[(r * cols) + j], p);
                total = chunk == 0 ? p : total + p;
            }
            y.Span[j] = total;
        }
    }

    /// <summary>DOT16 exactly as the rules of docs/KERNELS.md writes it.</summary>
    public static float Dot16(ReadOnlySpan<float> u, ReadOnlySpan<float> v)
    {
        var length = u.Length;
        Span<float> s = stackalloc float[16];
        s.Clear();
        var q = length / 16;
        for (var t = 0; t < q; t++)
        {
            for (var l = 0; l < 16; l++)
                s[l] = MathF.FusedMultiplyAdd(u[(16 * t) + l], v[(16 * t) + l], s[l]);
        }
        Span<float> h8 = stackalloc float[8], h4 = stackalloc float[4], h2 = stackalloc float[2];
        for (var i = 0; i < 8; i++)
            h8[i] = s[i] + s[i + 8];
        for (var i = 0; i < 4; i++)
            h4[i] = h8[i] + h8[i + 4];
        for (var i = 0; i < 2; i++)
            h2[i] = h4[i] + h4[i + 2];
        var r = h2[0] + h2[1];
        for (var j = 16 * q; j < length; j++)
            r = MathF.FusedMultiplyAdd(u[j], v[j], r);
        return r;
    }

    public void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation)
    {
        for (var r = 0; r < rows; r++)
        {
            for (var j = 0; j < cols; j++)
            {
                var x = c.Span[(r * cols) + j] + bias.Span[j];
                c.Span[(r * cols) + j] = activation switch
                {
                    Activation.Identity => x,
                    Activation.Relu => x < 0f ? 0f : x,
                    Activation.Sigmoid => 1f / (1f + ReproMath.Exp(-x)),
                    Activation.Tanh => ReproMath.Tanh(x),
                    _ => throw new ArgumentOutOfRangeException(nameof(activation)),
                };
            }
        }
    }

    public void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels)
    {
        for (var i = 0; i < n; i++)
        {
            var best = float.PositiveInfinity;
            var index = 0;
            for (var c = 0; c < k; c++)
            {
                var s = 0f;
                for (var t = 0; t < d; t++)
                {
                    var diff = points.Span[(i * d) + t] - centroids.Span[(c * d) + t];
                    s = MathF.FusedMultiplyAdd(diff, diff, s);
                }
                if (s < best)
                {
                    best = s;
                    index = c;
                }
            }
            labels.Span[i] = index;
        }
    }
}
