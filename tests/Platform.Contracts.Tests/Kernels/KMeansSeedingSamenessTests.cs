using Platform.Contracts.Kernels;
using Xunit.Abstractions;

namespace Platform.Contracts.Tests.Kernels;

/// <summary>
/// The faster k-means++ seeding (widened rows, binary-search pick, interleaved potential sums) chooses exactly the
/// indices of the previous implementation (<see cref="KMeansSeedingReference"/>) on every problem: the seeding is part
/// of the kmeans kernel's definition (docs/KERNELS.md), so a single different index changes every replica's output.
/// </summary>
public sealed class KMeansSeedingSamenessTests(ITestOutputHelper output)
{
    private enum Data { Uniform, Duplicates, AllIdentical, NaNs, Infinities, HugeAndTiny }

    [Fact]
    public void The_faster_seeding_chooses_the_same_indices_as_the_previous_one_on_many_problems()
    {
        const int dataSeed = 20261203;
        output.WriteLine($"data seed {dataSeed}");
        var random = new Random(dataSeed);
        var problems = 0;
        var failures = new List<string>();
        foreach (var k in new[] { 1, 2, 64 })
        {
            // n == k, a few blocks' worth (the parallel work items are 2048 points) and something in between.
            foreach (var n in new[] { k, 257, 4500 })
            {
                foreach (var d in new[] { 1, 7, 8, 9, 32, 33 })
                {
                    foreach (var data in Enum.GetValues<Data>())
                    {
                        var points = Points(random, data, n, d);
                        var seed = random.NextInt64(0, long.MaxValue);
                        var expected = KMeansSeedingReference.ChooseIndices(points, n, d, k, seed);
                        var actual = KMeansSeeding.ChooseIndices(points, n, d, k, seed);
                        problems++;
                        if (!expected.SequenceEqual(actual))
                        {
                            var first = Enumerable.Range(0, k).First(c => expected[c] != actual[c]);
                            failures.Add($"n {n} d {d} k {k} {data} seed {seed}: centre {first} is {actual[first]}, was {expected[first]}");
                        }
                    }
                }
            }
        }
        output.WriteLine($"{problems} problems, {failures.Count} differ");
        foreach (var failure in failures)
            output.WriteLine(failure);
        Assert.True(failures.Count == 0, $"{failures.Count} of {problems} problems chose other indices; first: {failures.FirstOrDefault()}");
    }

    [Fact]
    public void The_distance_pass_gives_the_bits_of_SquaredDistance_for_every_width_and_centre_count()
    {
        // Indices alone would miss a one-ulp slip in the distances (it rarely changes a pick or the best trial), so the
        // pass that computes them (four, two or one centres at a time, coordinates widened ahead) is held to the
        // definition, SquaredDistance, bit for bit: every d from 1 to 40 (all tails), 1 to 7 centres, with and without
        // a previous D² to keep (ties, NaN, infinities), points with NaN, infinite, huge and subnormal coordinates.
        const int dataSeed = 1203, n = 2100;
        output.WriteLine($"data seed {dataSeed}");
        var random = new Random(dataSeed);
        var checkedValues = 0;
        for (var d = 1; d <= 40; d++)
        {
            var points = Points(random, Data.Uniform, n, d);
            for (var i = 0; i < points.Length; i += 1 + random.Next(40))
            {
                points[i] = random.Next(5) switch
                {
                    0 => float.NaN,
                    1 => random.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity,
                    2 => points[i] * 3e37f,
                    3 => points[i] * 1e-40f,
                    _ => 0f,
                };
            }
            for (var count = 1; count <= 7; count++)
            {
                var centres = Enumerable.Range(0, count).Select(_ => random.Next(n)).ToArray();
                var widened = new double[count * d];
                KMeansSeeding.Widen(points, d, centres, widened);
                foreach (var withPrevious in new[] { false, true })
                {
                    double[]? previous = null;
                    if (withPrevious)
                    {
                        previous = new double[n];
                        for (var i = 0; i < n; i++)
                        {
                            previous[i] = random.Next(6) switch
                            {
                                0 => double.NaN,
                                1 => double.PositiveInfinity,
                                2 => 0,
                                3 => KMeansSeeding.SquaredDistance(points.AsSpan(i * d, d), points.AsSpan(centres[0] * d, d)),
                                _ => random.NextDouble() * d,
                            };
                        }
                    }
                    var distances = Enumerable.Range(0, count).Select(_ => new double[n]).ToArray();
                    KMeansSeeding.Distances(points, n, d, widened, count, distances, previous, CancellationToken.None);
                    for (var c = 0; c < count; c++)
                    {
                        for (var i = 0; i < n; i++)
                        {
                            var distance = KMeansSeeding.SquaredDistance(points.AsSpan(i * d, d), points.AsSpan(centres[c] * d, d));
                            var expected = previous is null || distance < previous[i] ? distance : previous[i];
                            var actual = distances[c][i];
                            // Any NaN is a NaN: no pick or comparison can tell two NaN payloads apart.
                            Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual) || (double.IsNaN(expected) && double.IsNaN(actual)),
                                $"d {d}, {count} centres, previous {withPrevious}: point {i} to centre {c} (point {centres[c]}) is {actual:R}, defined {expected:R}");
                            checkedValues++;
                        }
                    }
                }
            }
        }
        output.WriteLine($"{checkedValues} distances identical");
    }

    [Fact]
    public void The_pick_from_kept_running_sums_is_the_documented_linear_scan()
    {
        // The rule: the first i whose running sum (from +0, in index order) exceeds u·total, else the last D² > 0, else 0.
        // Held against a transcription of it on D² with long runs of zeros, values too small to move the sum, huge ones,
        // NaN and infinity, for u = 0, u just below 1 (u·total may round to total) and many u between, and, with a
        // finite total, for targets equal to a running sum (the first strictly greater one must win). Targets are u·total
        // as in the seeding: with an infinite total, u = 0 gives NaN, not 0.
        const int dataSeed = 6402;
        output.WriteLine($"data seed {dataSeed}");
        var random = new Random(dataSeed);
        var picks = 0;
        foreach (var n in new[] { 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4500 })
        {
            for (var problem = 0; problem < 40; problem++)
            {
                var kind = problem % 5;
                var closest = new double[n];
                for (var i = 0; i < n; i++)
                {
                    closest[i] = random.Next(4) switch
                    {
                        0 => 0,
                        1 => random.NextDouble() * 1e-300,
                        2 => random.NextDouble() * (kind == 1 ? 1e300 : 1),
                        _ => random.NextDouble() * 10,
                    };
                }
                if (kind == 2)
                    closest[random.Next(n)] = double.NaN;
                if (kind == 3)
                    closest[random.Next(n)] = double.PositiveInfinity;
                if (kind == 4 && problem % 10 == 4)
                    Array.Clear(closest);
                var running = new double[(n + KMeansSeeding.Stride - 1) / KMeansSeeding.Stride];
                var total = KMeansSeeding.RunningSums([closest], n, [running], [0.0]);
                var targets = new List<double> { 0 * total, (1 - Math.Pow(2, -53)) * total, 0.5 * total };
                for (var j = 0; j < 20; j++)
                    targets.Add(random.NextDouble() * total);
                if (double.IsFinite(total))
                {
                    var sum = 0.0;
                    var at = random.Next(n);
                    for (var i = 0; i <= at; i++)
                        sum += closest[i];
                    targets.AddRange([sum, total, running[0]]);
                }
                foreach (var target in targets)
                {
                    var expected = LinearPick(closest, target);
                    var actual = KMeansSeeding.Pick(closest, running, total, target);
                    Assert.True(expected == actual, $"n {n}, problem {problem}, total {total:R}, target {target:R}: picked {actual}, the scan picks {expected}");
                    picks++;
                }
            }
        }
        output.WriteLine($"{picks} picks identical");
    }

    private static int LinearPick(double[] closest, double target)
    {
        var running = 0.0;
        for (var i = 0; i < closest.Length; i++)
        {
            running += closest[i];
            if (running > target)
                return i;
        }
        for (var i = closest.Length - 1; i >= 0; i--)
        {
            if (closest[i] > 0)
                return i;
        }
        return 0;
    }

    [Fact]
    public void Identical_points_fall_back_to_point_0_for_every_further_centre()
    {
        // Every D² is 0 once the first centre is chosen, so no running sum exceeds u·0: the fallback (no point with
        // D² > 0) picks point 0 for every further centre, in both implementations.
        var identical = Enumerable.Repeat(3.5f, 10 * 4).ToArray();
        var chosen = KMeansSeeding.ChooseIndices(identical, 10, 4, 5, seed: 11);
        Assert.Equal(KMeansSeedingReference.ChooseIndices(identical, 10, 4, 5, seed: 11), chosen);
        Assert.All(chosen.Skip(1), i => Assert.Equal(0, i));
    }

    private static float[] Points(Random random, Data data, int n, int d)
    {
        var points = new float[n * d];
        for (var i = 0; i < points.Length; i++)
            points[i] = (float)((random.NextDouble() * 2) - 1);
        switch (data)
        {
            case Data.Duplicates:
                // A handful of distinct rows, each repeated many times: many D² are exactly 0 and potentials tie.
                var distinct = Math.Max(1, n / 16);
                for (var i = distinct; i < n; i++)
                    Array.Copy(points, random.Next(distinct) * d, points, i * d, d);
                break;
            case Data.AllIdentical:
                for (var i = 1; i < n; i++)
                    Array.Copy(points, 0, points, i * d, d);
                break;
            case Data.NaNs:
                // A NaN coordinate makes that point's D² NaN, and the total NaN: the pick falls back.
                for (var i = 0; i < Math.Max(1, n / 100); i++)
                    points[random.Next(points.Length)] = float.NaN;
                break;
            case Data.Infinities:
                // Infinite coordinates give infinite D² (or NaN where two infinities meet).
                for (var i = 0; i < Math.Max(1, n / 100); i++)
                    points[random.Next(points.Length)] = random.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity;
                break;
            case Data.HugeAndTiny:
                // Magnitudes from subnormal to near float.MaxValue: running sums round away the small D² entirely.
                for (var i = 0; i < points.Length; i++)
                    points[i] *= MathF.Pow(10, random.Next(-44, 38));
                break;
        }
        return points;
    }
}
