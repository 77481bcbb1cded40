namespace Platform.Contracts.Kernels;

/// <summary>
/// Which points start as kmeans centroids. Part of the kernel's definition, not of any backend: every backend
/// and every replica must start from the same points for results to be comparable, so the choice uses
/// SplitMix64, which is simple to reproduce in any language, rather than System.Random.
/// </summary>
public static class KMeansSeeding
{
    /// <summary>k distinct indices in [0, n), by a partial Fisher-Yates shuffle driven by SplitMix64(seed).</summary>
    public static int[] ChooseIndices(int n, int k, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, k);
        // Swaps are kept in a map so choosing k of n costs O(k), not an O(n) permutation array.
        var swapped = new Dictionary<int, int>();
        var chosen = new int[k];
        var state = unchecked((ulong)seed);
        for (var i = 0; i < k; i++)
        {
            var j = i + (int)(Next(ref state) % (ulong)(n - i));
            var atJ = swapped.TryGetValue(j, out var sj) ? sj : j;
            var atI = swapped.TryGetValue(i, out var si) ? si : i;
            chosen[i] = atJ;
            swapped[j] = atI;
        }
        return chosen;
    }

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
