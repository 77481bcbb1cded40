using Xunit.Abstractions;

namespace Platform.Testing;

/// <summary>Random test data from a fixed seed, printed with the test's output so a failure can be replayed.</summary>
public static class SeededData
{
    public static byte[] Bytes(int size, int seed, ITestOutputHelper output)
    {
        output.WriteLine($"seed {seed}");
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
