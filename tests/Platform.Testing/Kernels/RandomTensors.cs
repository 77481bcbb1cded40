using Platform.Contracts.Tensors;

namespace Platform.Testing.Kernels;

/// <summary>Float32 tensors of uniform values in [-1, 1) from a caller's seeded generator, for tests and benchmarks.</summary>
public static class RandomTensors
{
    public static NpyArray Uniform(Random random, params int[] shape)
    {
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (var i = 0; i < data.Length; i++)
            data[i] = (float)((random.NextDouble() * 2) - 1);
        return NpyArray.FromFloat32(data, shape);
    }
}
