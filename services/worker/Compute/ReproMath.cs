namespace Platform.Worker.Compute;

/// <summary>
/// The one definition of exp, tanh and sigmoid that every backend follows, so that activations are the same bytes
/// on the SIMD backend (per vector lane), in OpenCL C and in ILGPU kernels. Built only from IEEE float32
/// + - * / (each rounded to nearest even), fused multiply-add (one rounding), comparisons, float/int conversions
/// and bit reinterpretation: no library exp or tanh, whose results are not specified to the bit.
/// <para>
/// Normative operation sequence (fma(a, b, c) is a·b + c rounded once; every other operation is rounded on its
/// own; nothing may be contracted or reassociated):
/// </para>
/// <code>
/// Exp(x):
///   if x is NaN:                  return x
///   if x > 88.72283172607421875:  return +Inf         (0x42B17217, the largest float whose exp is finite)
///   if x &lt; -103.97208404541016: return +0           (0xC2CFF1B5; exp rounds to 0 below it)
///   t  = x * 1.44269502162933349609375                (log2(e) as a float, one rounded multiply)
///   kf = (t + 12582912) - 12582912                    (1.5·2^23: t rounded half-to-even to an integer)
///   n  = (int)kf                                      (exact: -150 ≤ n ≤ 128)
///   r  = fma(kf, -0.693359375, x)                     (ln 2 high part: 355/512, exact in float)
///   r  = fma(kf, 2.12194440e-4, r)                    (ln 2 low part: ln 2 = 0.693359375 - 2.12194440e-4)
///   z  = r * r
///   p  = fma(1.9875691500e-4, r, 1.3981999507e-3)     (Cephes expf coefficients, Horner with fma)
///   p  = fma(p, r, 8.3334519073e-3)
///   p  = fma(p, r, 4.1665795894e-2)
///   p  = fma(p, r, 1.6666665459e-1)
///   p  = fma(p, r, 5.0000001201e-1)
///   y  = fma(p, z, r)
///   y  = y + 1
///   scale y by 2^n, multiplying by powers of two built from exponent bits ((e + 127) &lt;&lt; 23):
///     -126 ≤ n ≤ 127:  y * 2^n                        (exact)
///     n = 128:         (y * 2) * 2^127                (rounds once, to +Inf if too large)
///     n &lt; -126:       (y * 2^(n + 64)) * 2^-64       (the first product is exact, the second rounds once
///                                                     into the subnormal range)
///
/// Tanh(x):
///   if x is NaN:        return x
///   a = |x|             (sign bit cleared)
///   if a &lt; 0.625:      z = a * a
///                       p = fma(-5.70498872745e-3, z, 2.06390887954e-2)   (Cephes tanhf coefficients)
///                       p = fma(p, z, -5.37397155531e-2)
///                       p = fma(p, z, 1.33314422036e-1)
///                       p = fma(p, z, -3.33332819422e-1)
///                       r = fma(p * z, a, a)
///   else if a &lt; 10:    r = 1 - 2 / (Exp(a + a) + 1)
///   else:               r = 1
///   return r with the sign bit of x                  (so tanh(-0) = -0 and tanh(-Inf) = -1)
///
/// Sigmoid(x) = 1 / (1 + Exp(-x))
/// </code>
/// <para>
/// Accuracy against double-precision Math.Exp / Math.Tanh (ReproMathTests sweeps every 61st float and the
/// edges): Exp within 1.01 ulp over its whole finite range, including subnormal results; Tanh within 1.3 ulp;
/// Sigmoid within 3 ulp, except that it is +0 below -88.7228 (e^-x overflows), where the exact value is subnormal.
/// Exact: Exp(±0) = 1, Exp(+Inf) = +Inf, Exp(-Inf) = +0, Tanh(±0) = ±0, Tanh(±Inf) = ±1, NaN in gives the same
/// NaN out. Subnormal inputs and outputs are IEEE (a device that flushes them to zero is not a reproducible
/// backend).
/// </para>
/// <para>
/// Written as plain static code (no arrays, no exceptions, no library calls but the fma) so that ILGPU can
/// compile it into kernels; the two bit casts are isolated in <see cref="Bits"/> and <see cref="FromBits"/>.
/// </para>
/// </summary>
public static class ReproMath
{
    /// <summary>Above this, exp overflows: +Inf.</summary>
    public const float ExpOverflow = 88.72283172607421875f;

    /// <summary>Below this, exp rounds to +0.</summary>
    public const float ExpUnderflow = -103.97208404541015625f;

    /// <summary>Below this |x|, tanh uses its odd polynomial; above, 1 - 2/(e^2|x| + 1).</summary>
    public const float TanhPolynomialLimit = 0.625f;

    /// <summary>At and above this |x|, tanh is ±1.</summary>
    public const float TanhSaturation = 10f;

    public const float Log2E = 1.44269502162933349609375f;
    public const float RoundMagic = 12582912f;
    public const float Ln2High = 0.693359375f;
    public const float Ln2Low = -2.12194440e-4f;

    public const float ExpP0 = 1.9875691500e-4f;
    public const float ExpP1 = 1.3981999507e-3f;
    public const float ExpP2 = 8.3334519073e-3f;
    public const float ExpP3 = 4.1665795894e-2f;
    public const float ExpP4 = 1.6666665459e-1f;
    public const float ExpP5 = 5.0000001201e-1f;

    public const float TanhP0 = -5.70498872745e-3f;
    public const float TanhP1 = 2.06390887954e-2f;
    public const float TanhP2 = -5.37397155531e-2f;
    public const float TanhP3 = 1.33314422036e-1f;
    public const float TanhP4 = -3.33332819422e-1f;

    /// <summary>e^x by the sequence in the class comment.</summary>
    public static float Exp(float x)
    {
        if (float.IsNaN(x))
            return x;
        if (x > ExpOverflow)
            return float.PositiveInfinity;
        if (x < ExpUnderflow)
            return 0f;
        var t = x * Log2E;
        var kf = (t + RoundMagic) - RoundMagic;
        var n = (int)kf;
        var r = MathF.FusedMultiplyAdd(kf, -Ln2High, x);
        r = MathF.FusedMultiplyAdd(kf, -Ln2Low, r);
        var z = r * r;
        var p = MathF.FusedMultiplyAdd(ExpP0, r, ExpP1);
        p = MathF.FusedMultiplyAdd(p, r, ExpP2);
        p = MathF.FusedMultiplyAdd(p, r, ExpP3);
        p = MathF.FusedMultiplyAdd(p, r, ExpP4);
        p = MathF.FusedMultiplyAdd(p, r, ExpP5);
        var y = MathF.FusedMultiplyAdd(p, z, r);
        y = y + 1f;
        if (n > 127)
            return y * 2f * PowerOfTwo(127);
        if (n < -126)
            return y * PowerOfTwo(n + 64) * PowerOfTwo(-64);
        return y * PowerOfTwo(n);
    }

    /// <summary>tanh(x) by the sequence in the class comment.</summary>
    public static float Tanh(float x)
    {
        if (float.IsNaN(x))
            return x;
        var a = FromBits(Bits(x) & 0x7FFFFFFF);
        float r;
        if (a < TanhPolynomialLimit)
        {
            var z = a * a;
            var p = MathF.FusedMultiplyAdd(TanhP0, z, TanhP1);
            p = MathF.FusedMultiplyAdd(p, z, TanhP2);
            p = MathF.FusedMultiplyAdd(p, z, TanhP3);
            p = MathF.FusedMultiplyAdd(p, z, TanhP4);
            r = MathF.FusedMultiplyAdd(p * z, a, a);
        }
        else if (a < TanhSaturation)
        {
            r = 1f - (2f / (Exp(a + a) + 1f));
        }
        else
        {
            r = 1f;
        }
        return FromBits(Bits(r) | (Bits(x) & unchecked((int)0x80000000)));
    }

    /// <summary>1 / (1 + e^-x).</summary>
    public static float Sigmoid(float x) => 1f / (1f + Exp(-x));

    /// <summary>2^e for -126 ≤ e ≤ 127, from its exponent bits.</summary>
    private static float PowerOfTwo(int e) => FromBits((e + 127) << 23);

    private static int Bits(float value) => BitConverter.SingleToInt32Bits(value);

    private static float FromBits(int bits) => BitConverter.Int32BitsToSingle(bits);
}
