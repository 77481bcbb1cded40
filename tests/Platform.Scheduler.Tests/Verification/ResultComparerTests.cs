using Microsoft.Extensions.Logging.Abstractions;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Verification;
using Xunit.Abstractions;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// Comparing two replicas' outputs within the tolerance streams both side by side: neither tensor is held whole, and
/// a difference found early ends the reading. Storage is a stand-in that serves bodies in 64 KiB pieces and counts
/// the bytes read; everything completes synchronously on it, so the bytes the comparison allocates are the calling
/// thread's.
/// </summary>
public sealed class ResultComparerTests(ITestOutputHelper output)
{
    // 32 MiB of float32 (64 MiB of int32 labels): a held tensor would show at once against the bounds below.
    private const int Elements = 8 << 20;

    private readonly StandInStorage _storage = new() { Chunk = 64 << 10 };

    private ResultComparer Comparer() => new(new HttpClient(_storage.Handler()) { BaseAddress = new Uri("http://storage") }, NullLogger<ResultComparer>.Instance);

    private ResultComparer.Outputs Output(string attempt, NpyArray tensor) =>
        new(attempt, KernelRevision: null, new Dictionary<string, Cid> { ["c"] = _storage.Put(Npy.ToBytes(tensor)) });

    private float[] Floats(int seed)
    {
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        return [.. Enumerable.Range(0, Elements).Select(_ => (float)((random.NextDouble() * 200) - 100))];
    }

    /// <summary>The verdict, and the bytes the comparison allocated (it must complete without yielding for that to mean anything).</summary>
    private static (bool Agree, long Allocated) Compare(ResultComparer comparer, ResultComparer.Outputs a, ResultComparer.Outputs b)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var comparing = comparer.AgreeAsync(JobId.New(), a, b, CancellationToken.None);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(comparing.IsCompleted, "the comparison yielded; its allocations are not all on this thread");
        return (comparing.Result, allocated);
    }

    [Fact]
    public void Outputs_within_the_tolerance_agree_and_neither_tensor_is_ever_held_whole()
    {
        var honest = Floats(seed: 41);
        var rounded = honest.Select(v => v * (1 + 1e-6f)).ToArray();
        var a = Output("att_a", NpyArray.FromFloat32(honest, Elements));
        var b = Output("att_b", NpyArray.FromFloat32(rounded, Elements));

        var (agree, allocated) = Compare(Comparer(), a, b);

        output.WriteLine($"allocated {allocated:N0} bytes comparing two {Elements * 4L:N0}-byte tensors; read {_storage.BytesServed:N0}");
        Assert.True(agree);
        Assert.True(_storage.BytesServed >= 2L * Elements * 4, "both tensors read to the end");
        // Two 1 MiB pieces (pooled) and the HTTP plumbing, against 64 MiB for the two tensors themselves.
        Assert.True(allocated < 8 << 20, $"the comparison allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_difference_in_the_last_element_is_found()
    {
        var honest = Floats(seed: 42);
        var wrong = (float[])honest.Clone();
        wrong[^1] += 1f;

        var (agree, _) = Compare(Comparer(), Output("att_a", NpyArray.FromFloat32(honest, Elements)), Output("att_b", NpyArray.FromFloat32(wrong, Elements)));

        Assert.False(agree);
    }

    [Fact]
    public void Labels_that_differ_from_the_start_end_the_comparison_after_the_first_pieces()
    {
        var labels = new int[Elements];
        var shifted = Enumerable.Range(0, Elements).Select(i => 1).ToArray();

        var (agree, _) = Compare(Comparer(), Output("att_a", NpyArray.FromInt32(labels, Elements)), Output("att_b", NpyArray.FromInt32(shifted, Elements)));

        output.WriteLine($"read {_storage.BytesServed:N0} of {2L * Elements * 4:N0} bytes");
        Assert.False(agree);
        Assert.True(_storage.BytesServed <= 4 << 20, $"read {_storage.BytesServed:N0} bytes after the answer was known");
    }
}
