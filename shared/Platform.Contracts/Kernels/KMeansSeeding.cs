using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Platform.Contracts.Kernels;

/// <summary>
/// Which points start as kmeans centroids: greedy k-means++, as scikit-learn seeds by default. Part of the kernel's
/// definition, not of any backend: it runs on the host, in double precision, in a fixed order, so every backend,
/// thread count and replica starts from the same points (docs/KERNELS.md, kmeans).
/// <list type="number">
/// <item>The random numbers are SplitMix64 from <c>seed</c> (state += 0x9E3779B97F4A7C15, then the usual mix), not
/// System.Random, whose algorithm may change between .NET versions. An index below n is <c>next % n</c>; a uniform
/// number in [0, 1) is <c>(next &gt;&gt; 11) · 2⁻⁵³</c>.</item>
/// <item>The first centre is the point at a uniform index. Every point's D² is its squared distance to the nearest
/// centre so far (<see cref="SquaredDistance"/>).</item>
/// <item>Each further centre: <c>2 + ⌊ln k⌋</c> local trials. Each trial draws u and takes the first point i whose
/// running sum D²[0] + … + D²[i] (added in index order) is greater than u · (that sum over all points); if none is
/// (rounding, or every D² is 0), the last point with D² &gt; 0, else point 0. The trial's potential is the sum in index
/// order of min(D²[i], its squared distance to the trial point) (the new distance only where it is smaller). The
/// trial with the smallest potential becomes the centre (the earlier trial on a tie, the first when all are NaN)
/// and its distances the new D².</item>
/// </list>
/// Distances are computed for many points in parallel, each point by the same operation sequence, so thread count
/// and partitioning do not change a bit; the sums run sequentially.
/// </summary>
public static class KMeansSeeding
{
    // Points per parallel work item: each gets its own slice of the distance arrays.
    private const int Block = 2048;

    // Points between two kept running sums of D².
    internal const int Stride = 64;

    /// <summary>The local trials per centre after the first: 2 + ⌊ln k⌋, as scikit-learn does.</summary>
    public static int LocalTrials(int k) => 2 + (int)Math.Log(k);

    /// <summary>The indices of the k starting centroids among the n points (rows of d floats).</summary>
    public static int[] ChooseIndices(float[] points, int n, int d, int k, long seed, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, k);
        ArgumentOutOfRangeException.ThrowIfLessThan(points.Length, (long)n * d);
        var state = unchecked((ulong)seed);
        var chosen = new int[k];
        chosen[0] = (int)(Next(ref state) % (ulong)n);
        var closest = new double[n];
        var trials = LocalTrials(k);
        // The trial centres widened to double once per pass, row after row (widening a float is exact).
        var centres = new double[trials * d];
        Widen(points, d, [chosen[0]], centres);
        Distances(points, n, d, centres, 1, [closest], previous: null, ct);
        // The running sums of D² are kept only every Stride points (see Pick): the sums of the trials' distances that
        // give their potentials are the running sums of the D² each would leave, so the winner's come for free.
        var stretches = (n + Stride - 1) / Stride;
        var closestRunning = new double[stretches];
        var total = RunningSums([closest], n, [closestRunning], [0.0]);
        var candidates = new int[trials];
        var candidateDistances = new double[trials][];
        var candidateRunning = new double[trials][];
        for (var t = 0; t < trials; t++)
            (candidateDistances[t], candidateRunning[t]) = (new double[n], new double[stretches]);
        var potentials = new double[trials];
        for (var c = 1; c < k; c++)
        {
            ct.ThrowIfCancellationRequested();
            // Every trial draws from the same D², so all are drawn first and their distances computed in one pass over
            // the points (memory-bound otherwise: one pass per trial); each value is the same as computed one by one.
            for (var t = 0; t < trials; t++)
                candidates[t] = Pick(closest, closestRunning, total, UniformDouble(ref state) * total);
            Widen(points, d, candidates, centres);
            Distances(points, n, d, centres, trials, candidateDistances, closest, ct);
            RunningSums(candidateDistances, n, candidateRunning, potentials);
            var bestTrial = 0;
            for (var t = 1; t < trials; t++)
            {
                if (potentials[t] < potentials[bestTrial])
                    bestTrial = t;
            }
            chosen[c] = candidates[bestTrial];
            (closest, candidateDistances[bestTrial]) = (candidateDistances[bestTrial], closest);
            (closestRunning, candidateRunning[bestTrial]) = (candidateRunning[bestTrial], closestRunning);
            total = potentials[bestTrial];
        }
        return chosen;
    }

    /// <summary>
    /// ‖p − q‖² in double, in eight lanes: lane l adds (p[t] − q[t])² for t ≡ l (mod 8) below 8⌊d/8⌋ (each
    /// difference of the floats widened to double, squared, then added: no fma), the lanes are combined as
    /// h[i] = s[i] + s[i+4], then (h[0] + h[1]) + (h[2] + h[3]), and the remaining coordinates are added in order.
    /// </summary>
    public static double SquaredDistance(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        var d = p.Length;
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        var t = 0;
        for (; t + 8 <= d; t += 8)
        {
            var x = Vector256.Create(p.Slice(t, 8));
            var y = Vector256.Create(q.Slice(t, 8));
            var dl = Vector256.WidenLower(x) - Vector256.WidenLower(y);
            var dh = Vector256.WidenUpper(x) - Vector256.WidenUpper(y);
            low += dl * dl;
            high += dh * dh;
        }
        var h = low + high;
        var s = (h.GetElement(0) + h.GetElement(1)) + (h.GetElement(2) + h.GetElement(3));
        for (; t < d; t++)
        {
            var diff = (double)p[t] - q[t];
            s += diff * diff;
        }
        return s;
    }

    // Below: the same operation sequence per (point, centre) as SquaredDistance, arranged for speed. The centres are
    // already widened to double (exact, as is widening each point's floats in registers), four centres share one pass
    // over a point's coordinates (one load and widening of the point for four distances, eight independent chains),
    // and the four lane sums are combined by a transpose: horizontal adds give h0 + h1 and h2 + h3 of every centre
    // (x + y and y + x are the same number; only a NaN's payload could differ, and no NaN payload is ever observed),
    // then one vector add gives (h0 + h1) + (h2 + h3). No fma anywhere: RyuJIT never fuses a separate * and +.

    // D² from point p (floats) to four widened centres, lane j for centre qj.
    private static Vector256<double> SquaredDistances(ref float p, ref double q0, ref double q1, ref double q2, ref double q3, int d)
    {
        Vector256<double> l0 = default, h0 = default, l1 = default, h1 = default, l2 = default, h2 = default, l3 = default, h3 = default;
        var t = 0;
        for (; t + 8 <= d; t += 8)
        {
            var x = Vector256.LoadUnsafe(ref p, (nuint)t);
            var pl = Vector256.WidenLower(x);
            var ph = Vector256.WidenUpper(x);
            var dl = pl - Vector256.LoadUnsafe(ref q0, (nuint)t);
            var dh = ph - Vector256.LoadUnsafe(ref q0, (nuint)(t + 4));
            l0 += dl * dl;
            h0 += dh * dh;
            dl = pl - Vector256.LoadUnsafe(ref q1, (nuint)t);
            dh = ph - Vector256.LoadUnsafe(ref q1, (nuint)(t + 4));
            l1 += dl * dl;
            h1 += dh * dh;
            dl = pl - Vector256.LoadUnsafe(ref q2, (nuint)t);
            dh = ph - Vector256.LoadUnsafe(ref q2, (nuint)(t + 4));
            l2 += dl * dl;
            h2 += dh * dh;
            dl = pl - Vector256.LoadUnsafe(ref q3, (nuint)t);
            dh = ph - Vector256.LoadUnsafe(ref q3, (nuint)(t + 4));
            l3 += dl * dl;
            h3 += dh * dh;
        }
        var s = Combine(l0 + h0, l1 + h1, l2 + h2, l3 + h3);
        if (t == d)
            return s;
        return Vector256.Create(
            Tail(s.GetElement(0), ref p, ref q0, t, d), Tail(s.GetElement(1), ref p, ref q1, t, d),
            Tail(s.GetElement(2), ref p, ref q2, t, d), Tail(s.GetElement(3), ref p, ref q3, t, d));
    }

    // D² from point p to two widened centres, lane j for centre qj.
    private static Vector128<double> SquaredDistances(ref float p, ref double q0, ref double q1, int d)
    {
        Vector256<double> l0 = default, h0 = default, l1 = default, h1 = default;
        var t = 0;
        for (; t + 8 <= d; t += 8)
        {
            var x = Vector256.LoadUnsafe(ref p, (nuint)t);
            var pl = Vector256.WidenLower(x);
            var ph = Vector256.WidenUpper(x);
            var dl = pl - Vector256.LoadUnsafe(ref q0, (nuint)t);
            var dh = ph - Vector256.LoadUnsafe(ref q0, (nuint)(t + 4));
            l0 += dl * dl;
            h0 += dh * dh;
            dl = pl - Vector256.LoadUnsafe(ref q1, (nuint)t);
            dh = ph - Vector256.LoadUnsafe(ref q1, (nuint)(t + 4));
            l1 += dl * dl;
            h1 += dh * dh;
        }
        Vector128<double> s;
        if (Avx.IsSupported)
        {
            // [a0 + a1, b0 + b1, a2 + a3, b2 + b3]: its halves added are (a0 + a1) + (a2 + a3) and the same of b.
            var pairs = Avx.HorizontalAdd(l0 + h0, l1 + h1);
            s = pairs.GetLower() + pairs.GetUpper();
        }
        else
        {
            s = Vector128.Create(Combine(l0 + h0), Combine(l1 + h1));
        }
        if (t == d)
            return s;
        return Vector128.Create(Tail(s.GetElement(0), ref p, ref q0, t, d), Tail(s.GetElement(1), ref p, ref q1, t, d));
    }

    // D² from point p to one widened centre.
    private static double SquaredDistanceToWidened(ref float p, ref double q, int d)
    {
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        var t = 0;
        for (; t + 8 <= d; t += 8)
        {
            var x = Vector256.LoadUnsafe(ref p, (nuint)t);
            var dl = Vector256.WidenLower(x) - Vector256.LoadUnsafe(ref q, (nuint)t);
            var dh = Vector256.WidenUpper(x) - Vector256.LoadUnsafe(ref q, (nuint)(t + 4));
            low += dl * dl;
            high += dh * dh;
        }
        return Tail(Combine(low + high), ref p, ref q, t, d);
    }

    // (h0 + h1) + (h2 + h3) of each of four vectors, as lanes 0..3.
    private static Vector256<double> Combine(Vector256<double> a, Vector256<double> b, Vector256<double> c, Vector256<double> e)
    {
        if (!Avx.IsSupported)
            return Vector256.Create(Combine(a), Combine(b), Combine(c), Combine(e));
        var ab = Avx.HorizontalAdd(a, b); // [a0 + a1, b0 + b1, a2 + a3, b2 + b3]
        var ce = Avx.HorizontalAdd(c, e); // [c0 + c1, e0 + e1, c2 + c3, e2 + e3]
        return Avx.Permute2x128(ab, ce, 0x20) + Avx.Permute2x128(ab, ce, 0x31);
    }

    private static double Combine(Vector256<double> h) => (h.GetElement(0) + h.GetElement(1)) + (h.GetElement(2) + h.GetElement(3));

    // The coordinates from t on, added one at a time in order.
    private static double Tail(double s, ref float p, ref double q, int t, int d)
    {
        for (; t < d; t++)
        {
            var diff = Unsafe.Add(ref p, t) - Unsafe.Add(ref q, t);
            s += diff * diff;
        }
        return s;
    }

    // Rows `indices` of the points, widened to double, one after the other into `widened`.
    internal static void Widen(float[] points, int d, int[] indices, double[] widened)
    {
        for (var c = 0; c < indices.Length; c++)
        {
            var row = points.AsSpan(indices[c] * d, d);
            var to = widened.AsSpan(c * d, d);
            for (var t = 0; t < d; t++)
                to[t] = row[t];
        }
    }

    // distances[c][i] = D²(point i, centre c) for the first `count` rows of `centres`, or with a previous D² the smaller
    // of the two (the previous one unless the new one is smaller, so a NaN distance never replaces a number).
    internal static void Distances(float[] points, int n, int d, double[] centres, int count, double[][] distances, double[]? previous, CancellationToken ct)
    {
        var options = new ParallelOptions { CancellationToken = ct };
        Parallel.For(0, (n + Block - 1) / Block, options, b =>
        {
            ref var q = ref MemoryMarshal.GetArrayDataReference(centres);
            for (int i = b * Block, end = Math.Min(n, i + Block); i < end; i++)
            {
                ref var p = ref points[i * d];
                var c = 0;
                for (; c + 4 <= count; c += 4)
                {
                    var s = SquaredDistances(ref p, ref Unsafe.Add(ref q, c * d), ref Unsafe.Add(ref q, (c + 1) * d),
                        ref Unsafe.Add(ref q, (c + 2) * d), ref Unsafe.Add(ref q, (c + 3) * d), d);
                    // The lane-wise `s < kept ? s : kept` (an ordered compare: false on NaN, as in Keep), without the
                    // branches that the early passes, where about half the points move, mispredicted (25% of the pass).
                    if (previous is not null)
                    {
                        var kept = Vector256.Create(previous[i]);
                        s = Vector256.ConditionalSelect(Vector256.LessThan(s, kept), s, kept);
                    }
                    distances[c][i] = s.GetElement(0);
                    distances[c + 1][i] = s.GetElement(1);
                    distances[c + 2][i] = s.GetElement(2);
                    distances[c + 3][i] = s.GetElement(3);
                }
                for (; c + 2 <= count; c += 2)
                {
                    var s = SquaredDistances(ref p, ref Unsafe.Add(ref q, c * d), ref Unsafe.Add(ref q, (c + 1) * d), d);
                    if (previous is not null)
                    {
                        var kept = Vector128.Create(previous[i]);
                        s = Vector128.ConditionalSelect(Vector128.LessThan(s, kept), s, kept);
                    }
                    distances[c][i] = s.GetElement(0);
                    distances[c + 1][i] = s.GetElement(1);
                }
                for (; c < count; c++)
                    Keep(distances[c], i, SquaredDistanceToWidened(ref p, ref Unsafe.Add(ref q, c * d), d), previous);
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Keep(double[] distances, int i, double distance, double[]? previous) =>
        distances[i] = previous is null || distance < previous[i] ? distance : previous[i];

    // For each array t: the sum in index order from +0 of values[t] into totals[t], and every Stride points the sum so
    // far into running[t] (the running sum at the stretch's last point). Up to four sums share one loop over the
    // points, each still its own sequential chain, so their additions overlap instead of waiting on one another.
    // Returns totals[0].
    internal static double RunningSums(double[][] values, int n, double[][] running, double[] totals)
    {
        var t = 0;
        for (; t + 4 <= values.Length; t += 4)
        {
            double[] a = values[t], b = values[t + 1], c = values[t + 2], e = values[t + 3];
            double sa = 0, sb = 0, sc = 0, se = 0;
            for (int start = 0, m = 0; start < n; start += Stride, m++)
            {
                for (int i = start, end = Math.Min(n, start + Stride); i < end; i++)
                {
                    sa += a[i];
                    sb += b[i];
                    sc += c[i];
                    se += e[i];
                }
                (running[t][m], running[t + 1][m], running[t + 2][m], running[t + 3][m]) = (sa, sb, sc, se);
            }
            (totals[t], totals[t + 1], totals[t + 2], totals[t + 3]) = (sa, sb, sc, se);
        }
        for (; t + 2 <= values.Length; t += 2)
        {
            double[] a = values[t], b = values[t + 1];
            double sa = 0, sb = 0;
            for (int start = 0, m = 0; start < n; start += Stride, m++)
            {
                for (int i = start, end = Math.Min(n, start + Stride); i < end; i++)
                {
                    sa += a[i];
                    sb += b[i];
                }
                (running[t][m], running[t + 1][m]) = (sa, sb);
            }
            (totals[t], totals[t + 1]) = (sa, sb);
        }
        for (; t < values.Length; t++)
        {
            var a = values[t];
            var sa = 0.0;
            for (int start = 0, m = 0; start < n; start += Stride, m++)
            {
                for (int i = start, end = Math.Min(n, start + Stride); i < end; i++)
                    sa += a[i];
                running[t][m] = sa;
            }
            totals[t] = sa;
        }
        return totals[0];
    }

    // The first point i whose running sum D²[0] + ... + D²[i] (from +0, in index order) is greater than target, else
    // the last point with D² > 0, else 0. `running` holds that sum at every Stride-th point (the last of each stretch).
    //
    // Why this is the documented linear scan: when the total is finite, every D² is a finite number >= 0 (a squared
    // distance, or the smaller of two; a NaN or infinite one would make the total NaN or infinite, and stay so), and
    // adding a number >= 0 never rounds a sum below itself, so the running sums never decrease. target = u·total with
    // u in [0, 1) is then a finite number, "running sum > target" is false up to some point and true from there on, and
    // a binary search over the stretches' last sums finds the stretch holding the first point where it is true; the sum
    // is then continued from the previous stretch's last sum, the same additions on the same values as the full scan.
    // When the total is +inf or NaN, target is +inf (u > 0) or NaN (u = 0 or a NaN total), which no sum exceeds: the
    // scan would find nothing, so the fallback decides directly.
    internal static int Pick(double[] closest, double[] running, double total, double target)
    {
        if (double.IsFinite(total))
        {
            int low = 0, high = running.Length;
            while (low < high)
            {
                var middle = low + ((high - low) >> 1);
                if (running[middle] > target)
                    high = middle;
                else
                    low = middle + 1;
            }
            if (low < running.Length)
            {
                var sum = low == 0 ? 0.0 : running[low - 1];
                for (int i = low * Stride, end = Math.Min(closest.Length, i + Stride); i < end; i++)
                {
                    sum += closest[i];
                    if (sum > target)
                        return i;
                }
            }
        }
        for (var i = closest.Length - 1; i >= 0; i--)
        {
            if (closest[i] > 0)
                return i;
        }
        return 0;
    }

    private static double UniformDouble(ref ulong state) => (Next(ref state) >> 11) * (1.0 / (1UL << 53));

    private static ulong Next(ref ulong state)
    {
        unchecked
        {
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
