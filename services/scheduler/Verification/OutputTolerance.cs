using System.Runtime.InteropServices;
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

    /// <summary>Whether two whole tensors agree: the same <see cref="Comparison"/> a streamed comparison runs, over all of them at once.</summary>
    public static bool Agree(NpyArray a, NpyArray b)
    {
        if (a.DType != b.DType || !a.Shape.AsSpan().SequenceEqual(b.Shape))
            return false;
        if (a.Float32 is { } x && b.Float32 is { } y)
        {
            if (x.Length != y.Length)
                return false;
            var floats = new Comparison(a.DType, x.Length);
            floats.Add(x, y);
            return floats.Agree;
        }
        if (a.Int32!.Length != b.Int32!.Length)
            return false;
        var comparison = new Comparison(a.DType, a.Int32.Length);
        comparison.Add(a.Int32, b.Int32);
        return comparison.Agree;
    }

    /// <summary>
    /// A comparison fed the two tensors' elements piece by piece, in order, so neither is ever held whole. The
    /// allowance depends on the largest finite magnitude of both tensors, known only at the end: so each finite pair
    /// is reduced to its excess over the scale-free part of the bound, |p - q| - (absolute + relative * max(|p|, |q|)),
    /// and the tensors agree when the worst excess is within <c>OfScale * scale</c>: the same test as comparing every
    /// element against the whole bound.
    /// </summary>
    public sealed class Comparison(NpyDType dtype, long elements)
    {
        private double _scale;
        private double _worstExcess = double.NegativeInfinity;
        private bool _nonFiniteDiffers;
        private long _seen;
        private long _mismatches;

        /// <summary>Settled before the end: a non-finite pair differs, or too many labels differ already.</summary>
        public bool Disagrees => _nonFiniteDiffers || _mismatches > MismatchesAllowed;

        /// <summary>The verdict once every element has been added (and false before).</summary>
        public bool Agree => _seen == elements && !Disagrees && (dtype != NpyDType.Float32 || _worstExcess <= OfScale * _scale);

        private double MismatchesAllowed => Math.Floor(IntegerMismatchFraction * elements);

        /// <summary>The next elements of both tensors as their little-endian bytes (whole elements, equal lengths).</summary>
        public void Add(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
        {
            if (dtype == NpyDType.Float32)
                Add(MemoryMarshal.Cast<byte, float>(x), MemoryMarshal.Cast<byte, float>(y));
            else
                Add(MemoryMarshal.Cast<byte, int>(x), MemoryMarshal.Cast<byte, int>(y));
        }

        public void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
        {
            for (var i = 0; i < x.Length; i++)
            {
                double p = x[i], q = y[i];
                if (!double.IsFinite(p) || !double.IsFinite(q))
                {
                    // Equal infinities compare equal; NaN == NaN is false in IEEE, so NaNs are matched by kind.
                    if (!(p == q || double.IsNaN(p) && double.IsNaN(q)))
                        _nonFiniteDiffers = true;
                    // A finite value beside a non-finite one still sets the scale, as it would over the whole tensor.
                }
                else
                {
                    _worstExcess = Math.Max(_worstExcess, Math.Abs(p - q) - (Absolute + Relative * Math.Max(Math.Abs(p), Math.Abs(q))));
                }
                if (double.IsFinite(p))
                    _scale = Math.Max(_scale, Math.Abs(p));
                if (double.IsFinite(q))
                    _scale = Math.Max(_scale, Math.Abs(q));
            }
            _seen += x.Length;
        }

        public void Add(ReadOnlySpan<int> x, ReadOnlySpan<int> y)
        {
            for (var i = 0; i < x.Length; i++)
            {
                if (x[i] != y[i])
                    _mismatches++;
            }
            _seen += x.Length;
        }
    }
}
