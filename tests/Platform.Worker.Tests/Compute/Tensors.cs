using Platform.Contracts.Tensors;

namespace Platform.Worker.Tests.Compute;

/// <summary>Seeded random tensors, and comparisons that say where they differ.</summary>
internal static class Tensors
{
    public static NpyArray Uniform(Random random, params int[] shape) => Platform.Testing.Kernels.RandomTensors.Uniform(random, shape);

    public static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>The first <paramref name="count"/> rows from <paramref name="start"/>.</summary>
    public static NpyArray Slice(this NpyArray rows, int start, int count)
    {
        var width = rows.Shape[1];
        return NpyArray.FromFloat32(rows.Float32!.AsSpan(start * width, count * width).ToArray(), count, width);
    }

    public static void AssertClose(float[] expected, float[] actual, Func<int, double> tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var difference = Math.Abs((double)expected[i] - actual[i]);
            if (!(difference <= tolerance(i)))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]} (difference {difference:G3}, tolerance {tolerance(i):G3})");
        }
    }
}
