using Platform.Contracts.Tensors;

namespace Platform.Scheduler.Verification;

/// <summary>
/// When two workers' outputs count as the same result. Honest workers on different backends (SIMD, OpenCL,
/// GPUs) add in different orders, so float32 results differ by rounding, and a point on a cluster boundary or
/// two neighbours closer than rounding may swap: the bounds below allow that and nothing a wrong computation
/// would produce (docs/KERNELS.md gives each kernel's tolerance against the reference).
/// </summary>
/// <remarks>
/// The comparison is symmetric and cannot be widened by either side. The scale that bounds summation rounding
/// is the largest finite magnitude of both tensors, so neither the order of the results nor a non-finite value
/// sets it. Non-finite elements agree only with the same non-finite value: +Inf with +Inf, -Inf with -Inf and
/// NaN with NaN (any payload or sign: backends produce different NaN bits). NaN agrees with NaN because the
/// kernels are deterministic functions of their inputs: an honest NaN (one carried in from a NaN input) appears
/// in every honest worker's output at the same place, so refusing it would fail honest replicas and penalize
/// their workers, while a cheater gains nothing, since a NaN that agrees is exactly the honest value. A huge
/// finite value cannot make garbage agree either: the element that holds it differs from the honest one by
/// about its own magnitude, more than the 0.1% (plus 0.001% of scale) it is allowed.
/// </remarks>
public static class OutputTolerance
{
    private const double Absolute = 1e-4;
    private const double Relative = 1e-3;
    // Rounding in a long sum grows with the terms summed, not with the result: bound it by the tensors' scale.
    private const double OfScale = 1e-5;
    // Labels and neighbour indices that may differ between honest workers (boundary points, near ties).
    private const double IntegerMismatchFraction = 0.01;

    public static bool Agree(NpyArray a, NpyArray b)
    {
        if (a.DType != b.DType || !a.Shape.AsSpan().SequenceEqual(b.Shape))
            return false;
        if (a.Float32 is { } x && b.Float32 is { } y)
            return FloatsAgree(x, y);
        return IntegersAgree(a.Int32!, b.Int32!);
    }

    private static bool FloatsAgree(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        if (x.Length != y.Length)
            return false;
        var scale = Math.Max(FiniteScale(x), FiniteScale(y));
        var allowance = Absolute + OfScale * scale;
        for (var i = 0; i < x.Length; i++)
        {
            double p = x[i], q = y[i];
            if (!double.IsFinite(p) || !double.IsFinite(q))
            {
                // Equal infinities compare equal; NaN == NaN is false in IEEE, so NaNs are matched by kind.
                if (!(p == q || double.IsNaN(p) && double.IsNaN(q)))
                    return false;
                continue;
            }
            if (Math.Abs(p - q) > allowance + Relative * Math.Max(Math.Abs(p), Math.Abs(q)))
                return false;
        }
        return true;
    }

    /// <summary>The largest finite magnitude in the tensor: NaN and infinities never set it.</summary>
    private static double FiniteScale(ReadOnlySpan<float> values)
    {
        var scale = 0.0;
        foreach (var v in values)
        {
            if (float.IsFinite(v))
                scale = Math.Max(scale, Math.Abs((double)v));
        }
        return scale;
    }

    private static bool IntegersAgree(int[] p, int[] q)
    {
        if (p.Length != q.Length)
            return false;
        var mismatches = 0;
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] != q[i])
                mismatches++;
        }
        return mismatches <= Math.Floor(IntegerMismatchFraction * p.Length);
    }
}
