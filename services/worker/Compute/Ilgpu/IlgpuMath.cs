using ILGPU;

namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// <see cref="ReproMath"/>'s Exp and Tanh, operation for operation, written with <see cref="IFloatOps"/> so that ILGPU
/// can compile them for CUDA without contraction. ReproMath itself cannot go into a CUDA kernel as it is: ILGPU
/// 1.5.3 compiles its <c>MathF.FusedMultiplyAdd</c> to an undefined external call, its <c>x * log2e</c> followed by
/// <c>+ 1.5·2^23</c> (and the final <c>y * 2^n</c> followed by <c>+ 1</c> in tanh) to <c>mul.f32</c> then
/// <c>add.f32</c>, which ptxas may fuse, and its <c>BitConverter</c> casts are replaced by ILGPU's Interop ones.
/// The sequence is the normative one of ReproMath's comment; the tests run both on the same inputs and require
/// the same bits.
/// </summary>
public static class IlgpuMath
{
    public static float Exp<T>(float x)
        where T : struct, IFloatOps
    {
        if (float.IsNaN(x))
            return x;
        if (x > ReproMath.ExpOverflow)
            return float.PositiveInfinity;
        if (x < ReproMath.ExpUnderflow)
            return 0f;
        var t = default(T).Mul(x, ReproMath.Log2E);
        var kf = default(T).Sub(default(T).Add(t, ReproMath.RoundMagic), ReproMath.RoundMagic);
        var n = (int)kf;
        var r = default(T).Fma(kf, -ReproMath.Ln2High, x);
        r = default(T).Fma(kf, -ReproMath.Ln2Low, r);
        var z = default(T).Mul(r, r);
        var p = default(T).Fma(ReproMath.ExpP0, r, ReproMath.ExpP1);
        p = default(T).Fma(p, r, ReproMath.ExpP2);
        p = default(T).Fma(p, r, ReproMath.ExpP3);
        p = default(T).Fma(p, r, ReproMath.ExpP4);
        p = default(T).Fma(p, r, ReproMath.ExpP5);
        var y = default(T).Fma(p, z, r);
        y = default(T).Add(y, 1f);
        if (n > 127)
            return default(T).Mul(default(T).Mul(y, 2f), PowerOfTwo(127));
        if (n < -126)
            return default(T).Mul(default(T).Mul(y, PowerOfTwo(n + 64)), PowerOfTwo(-64));
        return default(T).Mul(y, PowerOfTwo(n));
    }

    public static float Tanh<T>(float x)
        where T : struct, IFloatOps
    {
        if (float.IsNaN(x))
            return x;
        var a = FromBits(Bits(x) & 0x7FFFFFFF);
        float r;
        if (a < ReproMath.TanhPolynomialLimit)
        {
            var z = default(T).Mul(a, a);
            var p = default(T).Fma(ReproMath.TanhP0, z, ReproMath.TanhP1);
            p = default(T).Fma(p, z, ReproMath.TanhP2);
            p = default(T).Fma(p, z, ReproMath.TanhP3);
            p = default(T).Fma(p, z, ReproMath.TanhP4);
            r = default(T).Fma(default(T).Mul(p, z), a, a);
        }
        else if (a < ReproMath.TanhSaturation)
        {
            r = default(T).Sub(1f, default(T).Div(2f, default(T).Add(Exp<T>(default(T).Add(a, a)), 1f)));
        }
        else
        {
            r = 1f;
        }
        return FromBits(Bits(r) | (Bits(x) & unchecked((int)0x80000000)));
    }

    /// <summary>1 / (1 + e^-x); the negation is exact.</summary>
    public static float Sigmoid<T>(float x)
        where T : struct, IFloatOps => default(T).Div(1f, default(T).Add(1f, Exp<T>(-x)));

    private static float PowerOfTwo(int e) => FromBits((e + 127) << 23);

    // BitConverter is not compiled by ILGPU; its Interop casts are, on every accelerator.
    private static int Bits(float value) => (int)Interop.FloatAsInt(value);

    private static float FromBits(int bits) => Interop.IntAsFloat((uint)bits);
}
