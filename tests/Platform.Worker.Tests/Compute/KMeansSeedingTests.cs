using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.Worker.Compute;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// kmeans seeds with greedy k-means++ (issue 17): clusters that are plainly there are found whatever the seed, on
/// every backend. Random-point seeding put two starting points in one blob for most seeds, and Lloyd's algorithm
/// then stopped with two blobs merged and one split.
/// </summary>
public sealed class KMeansSeedingTests(Backends backends, ITestOutputHelper output) : IClassFixture<Backends>
{
    [Theory]
    [InlineData("simd")]
    [InlineData("opencl")]
    public void Four_separated_gaussian_blobs_are_recovered_for_seeds_0_to_9(string backend)
    {
        const int dataSeed = 1717, n = 2000, d = 2, k = 4;
        output.WriteLine($"data seed {dataSeed}");
        var random = new Random(dataSeed);
        // Unit-variance blobs 12 apart on the corners of a square, each point in a random blob.
        double[][] centres = [[0, 0], [12, 0], [0, 12], [12, 12]];
        var blobOf = new int[n];
        var points = new float[n * d];
        for (var i = 0; i < n; i++)
        {
            blobOf[i] = random.Next(k);
            for (var j = 0; j < d; j++)
                points[(i * d) + j] = (float)(centres[blobOf[i]][j] + Tensors.Gaussian(random));
        }
        var inputs = new Dictionary<string, NpyArray> { ["points"] = NpyArray.FromFloat32(points, n, d) };

        for (var seed = 0; seed < 10; seed++)
        {
            var parameters = new Dictionary<string, string> { ["k"] = "4", ["seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            var plan = KernelCatalog.Plan("kmeans", inputs.ToDictionary(i => i.Key, i => new TensorInfo(i.Value.DType, i.Value.Shape)), parameters, out var error);
            Assert.Null(error);
            var labels = KernelRunner.Run("kmeans", plan.Arguments, inputs, backends[backend], ComputeProgress.None)["labels"].Int32!;

            // Each blob is one cluster (all its points share a label) and no two blobs share one.
            var labelOfBlob = Enumerable.Range(0, k).Select(blob => Enumerable.Range(0, n).Where(i => blobOf[i] == blob).Select(i => labels[i]).Distinct().ToArray()).ToArray();
            output.WriteLine($"seed {seed}: labels per blob {string.Join(" | ", labelOfBlob.Select(l => string.Join(",", l)))}");
            Assert.All(labelOfBlob, l => Assert.True(l.Length == 1, $"seed {seed}: a blob was split across clusters {string.Join(",", l)}"));
            Assert.True(labelOfBlob.Select(l => l[0]).Distinct().Count() == k, $"seed {seed}: two blobs were merged into one cluster");
        }
    }
}
