using Platform.Contracts.Tensors;

namespace Platform.Scheduler.Verification;

/// <summary>
/// When two workers' outputs count as the same result. Honest workers on different backends (SIMD, OpenCL,
/// GPUs) add in different orders, so float32 results differ by rounding, and a point on a cluster boundary or
/// two neighbours closer than rounding may swap: the bounds below allow that and nothing a wrong computation
/// would produce (docs/KERNELS.md gives each kernel's tolerance against the reference).
/// </summary>
public static class OutputTolerance
{
    private const double Absolute = 1e-4;
    private const double Relative = 1e-3;
    // Rounding in a long sum grows with the terms summed, not with the result: bound it by the tensor's scale.
    private const double OfScale = 1e-5;
    // Labels and neighbour indices that may differ between honest workers (boundary points, near ties).
    private const double IntegerMismatchFraction = 0.01;

    public static bool Agree(NpyArray a, NpyArray b)
    {
        if (a.DType != b.DType || !a.Shape.AsSpan().SequenceEqual(b.Shape))
            return false;
        if (a.Float32 is { } x && b.Float32 is { } y)
        {
            var scale = 0.0;
            foreach (var v in y)
                scale = Math.Max(scale, Math.Abs((double)v));
            for (var i = 0; i < x.Length; i++)
            {
                if (float.IsNaN(x[i]) || float.IsNaN(y[i]))
                {
                    if (float.IsNaN(x[i]) != float.IsNaN(y[i]))
                        return false;
                    continue;
                }
                var difference = Math.Abs((double)x[i] - y[i]);
                if (difference > Absolute + Relative * Math.Max(Math.Abs((double)x[i]), Math.Abs((double)y[i])) + OfScale * scale)
                    return false;
            }
            return true;
        }
        var p = a.Int32!;
        var q = b.Int32!;
        var mismatches = 0;
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] != q[i])
                mismatches++;
        }
        return mismatches <= Math.Floor(IntegerMismatchFraction * p.Length);
    }
}
