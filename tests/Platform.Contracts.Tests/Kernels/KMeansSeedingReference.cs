using System.Runtime.Intrinsics;

namespace Platform.Contracts.Tests.Kernels;

/// <summary>
/// The previous implementation of <c>KMeansSeeding</c> (commit 9898ff9), kept verbatim as the reference that the
/// faster one must match index for index (<see cref="KMeansSeedingSamenessTests"/>). Not to be changed: it is what the
/// seeding was when docs/KERNELS.md's kmeans paragraph was written.
/// </summary>
internal static class KMeansSeedingReference
{
    // Points per parallel work item: each gets its own slice of the distance arrays.
    private const int Block = 2048;

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
        double[] closest = new double[n], running = new double[n];
        Distances(points, n, d, [chosen[0]], [closest], previous: null, ct);
        var trials = LocalTrials(k);
        var candidates = new int[trials];
        var candidateDistances = new double[trials][];
        for (var t = 0; t < trials; t++)
            candidateDistances[t] = new double[n];
        for (var c = 1; c < k; c++)
        {
            ct.ThrowIfCancellationRequested();
            var total = 0.0;
            for (var i = 0; i < n; i++)
                running[i] = total += closest[i];
            // Every trial draws from the same D², so all are drawn first and their distances computed in one pass over
            // the points (memory-bound otherwise: one pass per trial); each value is the same as computed one by one.
            for (var t = 0; t < trials; t++)
                candidates[t] = Pick(running, closest, UniformDouble(ref state) * total);
            Distances(points, n, d, candidates, candidateDistances, closest, ct);
            var bestTrial = 0;
            var bestPotential = 0.0;
            for (var t = 0; t < trials; t++)
            {
                var potential = 0.0;
                foreach (var distance in candidateDistances[t])
                    potential += distance;
                if (t == 0 || potential < bestPotential)
                    (bestTrial, bestPotential) = (t, potential);
            }
            chosen[c] = candidates[bestTrial];
            (closest, candidateDistances[bestTrial]) = (candidateDistances[bestTrial], closest);
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

    // distances[c][i] = D²(point i, centres[c]), or with a previous D² the smaller of the two (the previous one unless the new
    // one is smaller, so a NaN distance never replaces a number).
    private static void Distances(float[] points, int n, int d, int[] centres, double[][] distances, double[]? previous, CancellationToken ct)
    {
        var options = new ParallelOptions { CancellationToken = ct };
        Parallel.For(0, (n + Block - 1) / Block, options, b =>
        {
            for (int i = b * Block, end = Math.Min(n, i + Block); i < end; i++)
            {
                var p = points.AsSpan(i * d, d);
                for (var c = 0; c < centres.Length; c++)
                {
                    var distance = SquaredDistance(p, points.AsSpan(centres[c] * d, d));
                    distances[c][i] = previous is null || distance < previous[i] ? distance : previous[i];
                }
            }
        });
    }

    private static int Pick(double[] running, double[] closest, double target)
    {
        for (var i = 0; i < running.Length; i++)
        {
            if (running[i] > target)
                return i;
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
