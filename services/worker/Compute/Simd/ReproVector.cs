using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Platform.Worker.Compute.Simd;

/// <summary>
/// The reproducible building blocks of docs/KERNELS.md in vector form: <see cref="ReproMath"/>'s exp, tanh and
/// sigmoid evaluated lane by lane with exactly its operation sequence (so every lane equals the scalar function,
/// bit for bit, whatever the vector width), and the fixed 16-lane dot product DOT16.
/// </summary>
internal static class ReproVector
{
    /// <summary>ReproMath.Exp in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Exp(Vector<float> x)
    {
        var t = x * new Vector<float>(ReproMath.Log2E);
        var magic = new Vector<float>(ReproMath.RoundMagic);
        var kf = (t + magic) - magic;
        // Lanes past the thresholds (or NaN) compute garbage here and are replaced below.
        var n = Vector.ConvertToInt32(kf);
        var r = Vector.FusedMultiplyAdd(kf, new Vector<float>(-ReproMath.Ln2High), x);
        r = Vector.FusedMultiplyAdd(kf, new Vector<float>(-ReproMath.Ln2Low), r);
        var z = r * r;
        var p = Vector.FusedMultiplyAdd(new Vector<float>(ReproMath.ExpP0), r, new Vector<float>(ReproMath.ExpP1));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(ReproMath.ExpP2));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(ReproMath.ExpP3));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(ReproMath.ExpP4));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(ReproMath.ExpP5));
        var y = Vector.FusedMultiplyAdd(p, z, r);
        y += Vector<float>.One;

        // The scalar's three scalings as two multiplies per lane: y·2^n·1 (exact, so the same as y·2^n),
        // (y·2)·2^127 when n = 128, and (y·2^(n+64))·2^-64 when n < -126.
        var big = Vector.GreaterThan(n, new Vector<int>(127));
        var small = Vector.LessThan(n, new Vector<int>(-126));
        var first = Vector.ConditionalSelect(big, Vector<int>.One, Vector.ConditionalSelect(small, n + new Vector<int>(64), n));
        var second = Vector.ConditionalSelect(big, new Vector<int>(127), Vector.ConditionalSelect(small, new Vector<int>(-64), Vector<int>.Zero));
        var result = y * PowerOfTwo(first) * PowerOfTwo(second);

        result = Vector.ConditionalSelect(Vector.LessThan(x, new Vector<float>(ReproMath.ExpUnderflow)), Vector<float>.Zero, result);
        result = Vector.ConditionalSelect(Vector.GreaterThan(x, new Vector<float>(ReproMath.ExpOverflow)), new Vector<float>(float.PositiveInfinity), result);
        return Vector.ConditionalSelect(Vector.Equals(x, x), result, x);
    }

    /// <summary>ReproMath.Tanh in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Tanh(Vector<float> x)
    {
        var signMask = new Vector<int>(unchecked((int)0x80000000));
        var a = Vector.AsVectorSingle(Vector.AndNot(Vector.AsVectorInt32(x), signMask));
        var z = a * a;
        var p = Vector.FusedMultiplyAdd(new Vector<float>(ReproMath.TanhP0), z, new Vector<float>(ReproMath.TanhP1));
        p = Vector.FusedMultiplyAdd(p, z, new Vector<float>(ReproMath.TanhP2));
        p = Vector.FusedMultiplyAdd(p, z, new Vector<float>(ReproMath.TanhP3));
        p = Vector.FusedMultiplyAdd(p, z, new Vector<float>(ReproMath.TanhP4));
        var r = Vector.FusedMultiplyAdd(p * z, a, a);

        var polynomial = Vector.LessThan(a, new Vector<float>(ReproMath.TanhPolynomialLimit));
        if (!Vector.EqualsAll(Vector.AsVectorInt32(polynomial), new Vector<int>(-1)))
        {
            var one = Vector<float>.One;
            var viaExp = one - (new Vector<float>(2f) / (Exp(a + a) + one));
            var saturated = Vector.GreaterThanOrEqual(a, new Vector<float>(ReproMath.TanhSaturation));
            r = Vector.ConditionalSelect(polynomial, r, Vector.ConditionalSelect(saturated, one, viaExp));
        }
        var signed = Vector.AsVectorSingle(Vector.AsVectorInt32(r) | (Vector.AsVectorInt32(x) & signMask));
        return Vector.ConditionalSelect(Vector.Equals(x, x), signed, x);
    }

    /// <summary>ReproMath.Sigmoid in every lane: 1 / (1 + Exp(-x)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Sigmoid(Vector<float> x) => Vector<float>.One / (Vector<float>.One + Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> PowerOfTwo(Vector<int> e) => Vector.AsVectorSingle(Vector.ShiftLeft(e + new Vector<int>(127), 23));

    /// <summary>
    /// DOT16(u, v): sixteen lanes each summing every 16th product with fma in ascending order, the fixed tree
    /// s[i]+s[i+8], +4, +2, +1, then the tail folded in one fma at a time. The lanes are one Vector512 or two
    /// Vector256 (or, without either, plain floats): the same per-lane chains, so the same result.
    /// </summary>
    public static float Dot16(ReadOnlySpan<float> u, ReadOnlySpan<float> v)
    {
        var length = u.Length;
        ref var a = ref MemoryMarshal.GetReference(u);
        ref var b = ref MemoryMarshal.GetReference(v[..length]);
        var blocks = length / 16;
        float r;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512<float>.Zero;
            for (var t = 0; t < blocks; t++)
                s = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref a, (nuint)(16 * t)), Vector512.LoadUnsafe(ref b, (nuint)(16 * t)), s);
            r = Reduce(s.GetLower(), s.GetUpper());
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> lo = Vector256<float>.Zero, hi = Vector256<float>.Zero;
            for (var t = 0; t < blocks; t++)
            {
                lo = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)(16 * t)), Vector256.LoadUnsafe(ref b, (nuint)(16 * t)), lo);
                hi = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)(16 * t) + 8), Vector256.LoadUnsafe(ref b, (nuint)(16 * t) + 8), hi);
            }
            r = Reduce(lo, hi);
        }
        else
        {
            Span<float> s = stackalloc float[16];
            s.Clear();
            for (var t = 0; t < blocks; t++)
            {
                for (var l = 0; l < 16; l++)
                    s[l] = MathF.FusedMultiplyAdd(u[(16 * t) + l], v[(16 * t) + l], s[l]);
            }
            Span<float> h = stackalloc float[8];
            for (var i = 0; i < 8; i++)
                h[i] = s[i] + s[i + 8];
            for (var i = 0; i < 4; i++)
                h[i] = h[i] + h[i + 4];
            for (var i = 0; i < 2; i++)
                h[i] = h[i] + h[i + 2];
            r = h[0] + h[1];
        }
        for (var j = 16 * blocks; j < length; j++)
            r = MathF.FusedMultiplyAdd(Unsafe.Add(ref a, j), Unsafe.Add(ref b, j), r);
        return r;
    }

    /// <summary>DOT16 of four rows against one vector at once: four independent chains cover the fma latency.</summary>
    public static void Dot16x4(ReadOnlySpan<float> rows, int cols, ReadOnlySpan<float> v, Span<float> result)
    {
        if (!Vector512.IsHardwareAccelerated && !Vector256.IsHardwareAccelerated)
        {
            for (var i = 0; i < 4; i++)
                result[i] = Dot16(rows.Slice(i * cols, cols), v);
            return;
        }
        ref var r0 = ref MemoryMarshal.GetReference(rows[..(4 * cols)]);
        ref var r1 = ref Unsafe.Add(ref r0, cols);
        ref var r2 = ref Unsafe.Add(ref r1, cols);
        ref var r3 = ref Unsafe.Add(ref r2, cols);
        ref var x = ref MemoryMarshal.GetReference(v[..cols]);
        var blocks = cols / 16;
        float d0, d1, d2, d3;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (nuint o = 0; o < (nuint)(16 * blocks); o += 16)
            {
                var xv = Vector512.LoadUnsafe(ref x, o);
                s0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r0, o), xv, s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r1, o), xv, s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r2, o), xv, s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r3, o), xv, s3);
            }
            (d0, d1, d2, d3) = (Reduce(s0.GetLower(), s0.GetUpper()), Reduce(s1.GetLower(), s1.GetUpper()),
                Reduce(s2.GetLower(), s2.GetUpper()), Reduce(s3.GetLower(), s3.GetUpper()));
        }
        else
        {
            Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default;
            Vector256<float> h0 = default, h1 = default, h2 = default, h3 = default;
            for (nuint o = 0; o < (nuint)(16 * blocks); o += 16)
            {
                var xl = Vector256.LoadUnsafe(ref x, o);
                var xh = Vector256.LoadUnsafe(ref x, o + 8);
                l0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r0, o), xl, l0);
                h0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r0, o + 8), xh, h0);
                l1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r1, o), xl, l1);
                h1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r1, o + 8), xh, h1);
                l2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r2, o), xl, l2);
                h2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r2, o + 8), xh, h2);
                l3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r3, o), xl, l3);
                h3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r3, o + 8), xh, h3);
            }
            (d0, d1, d2, d3) = (Reduce(l0, h0), Reduce(l1, h1), Reduce(l2, h2), Reduce(l3, h3));
        }
        for (var j = 16 * blocks; j < cols; j++)
        {
            var xj = Unsafe.Add(ref x, j);
            d0 = MathF.FusedMultiplyAdd(Unsafe.Add(ref r0, j), xj, d0);
            d1 = MathF.FusedMultiplyAdd(Unsafe.Add(ref r1, j), xj, d1);
            d2 = MathF.FusedMultiplyAdd(Unsafe.Add(ref r2, j), xj, d2);
            d3 = MathF.FusedMultiplyAdd(Unsafe.Add(ref r3, j), xj, d3);
        }
        result[0] = d0;
        result[1] = d1;
        result[2] = d2;
        result[3] = d3;
    }

    /// <summary>The fixed tree over lanes 0-7 (lo) and 8-15 (hi): h8 = lo + hi, then halves down to one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Reduce(Vector256<float> lo, Vector256<float> hi)
    {
        var h8 = lo + hi;
        var h4 = h8.GetLower() + h8.GetUpper();
        var h2 = h4 + Vector128.Shuffle(h4, Vector128.Create(2, 3, 0, 1));
        return h2.GetElement(0) + h2.GetElement(1);
    }
}
