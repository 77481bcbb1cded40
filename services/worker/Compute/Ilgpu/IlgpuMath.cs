namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// <see cref="ReproMath"/>'s Exp and Tanh, operation for operation, written with <see cref="Rn"/> so that ILGPU
/// can compile them for CUDA without contraction. ReproMath itself cannot go into a CUDA kernel as it is: ILGPU
/// 1.5.3 compiles its <c>MathF.FusedMultiplyAdd</c> to an undefined external call, its <c>x * log2e</c> followed by
/// <c>+ 1.5·2^23</c> (and the final <c>y * 2^n</c> followed by <c>+ 1</c> in tanh) to <c>mul.f32</c> then
/// <c>add.f32</c>, which ptxas may fuse, and its <c>BitConverter</c> casts are replaced by ILGPU's Interop ones.
/// The sequence is the normative one of ReproMath's comment; the tests run both on the same inputs and require
/// the same bits.
/// </summary>
public static class IlgpuMath
{
    public static float Exp(float x)
    {
        if (float.IsNaN(x))
            return x;
        if (x > ReproMath.ExpOverflow)
            return float.PositiveInfinity;
        if (x < ReproMath.ExpUnderflow)
            return 0f;
        var t = Rn.Mul(x, ReproMath.Log2E);
        var kf = Rn.Sub(Rn.Add(t, ReproMath.RoundMagic), ReproMath.RoundMagic);
        var n = (int)kf;
        var r = Rn.Fma(kf, -ReproMath.Ln2High, x);
        r = Rn.Fma(kf, -ReproMath.Ln2Low, r);
        var z = Rn.Mul(r, r);
        var p = Rn.Fma(ReproMath.ExpP0, r, ReproMath.ExpP1);
        p = Rn.Fma(p, r, ReproMath.ExpP2);
        p = Rn.Fma(p, r, ReproMath.ExpP3);
        p = Rn.Fma(p, r, ReproMath.ExpP4);
        p = Rn.Fma(p, r, ReproMath.ExpP5);
        var y = Rn.Fma(p, z, r);
        y = Rn.Add(y, 1f);
        if (n > 127)
            return Rn.Mul(Rn.Mul(y, 2f), PowerOfTwo(127));
        if (n < -126)
            return Rn.Mul(Rn.Mul(y, PowerOfTwo(n + 64)), PowerOfTwo(-64));
        return Rn.Mul(y, PowerOfTwo(n));
    }

    public static float Tanh(float x)
    {
        if (float.IsNaN(x))
            return x;
        var a = Rn.FromBits(Rn.Bits(x) & 0x7FFFFFFF);
        float r;
        if (a < ReproMath.TanhPolynomialLimit)
        {
            var z = Rn.Mul(a, a);
            var p = Rn.Fma(ReproMath.TanhP0, z, ReproMath.TanhP1);
            p = Rn.Fma(p, z, ReproMath.TanhP2);
            p = Rn.Fma(p, z, ReproMath.TanhP3);
            p = Rn.Fma(p, z, ReproMath.TanhP4);
            r = Rn.Fma(Rn.Mul(p, z), a, a);
        }
        else if (a < ReproMath.TanhSaturation)
        {
            r = Rn.Sub(1f, Rn.Div(2f, Rn.Add(Exp(Rn.Add(a, a)), 1f)));
        }
        else
        {
            r = 1f;
        }
        return Rn.FromBits(Rn.Bits(r) | (Rn.Bits(x) & unchecked((int)0x80000000)));
    }

    /// <summary>1 / (1 + e^-x); the negation is exact.</summary>
    public static float Sigmoid(float x) => Rn.Div(1f, Rn.Add(1f, Exp(-x)));

    private static float PowerOfTwo(int e) => Rn.FromBits((e + 127) << 23);
}
