using Platform.Contracts.Tensors;
using Platform.Scheduler.Verification;

namespace Platform.Scheduler.Tests.Verification;

public sealed class OutputToleranceTests
{
    private static NpyArray Floats(params float[] values) => NpyArray.FromFloat32(values, values.Length);

    private static NpyArray Ints(int[] values) => NpyArray.FromInt32(values, values.Length);

    [Fact]
    public void Float_results_that_differ_by_rounding_agree()
    {
        Assert.True(OutputTolerance.Agree(Floats(1, 1000, -3.5f), Floats(1.00001f, 1000.05f, -3.50001f)));
        Assert.True(OutputTolerance.Agree(Floats(float.NaN, 2), Floats(float.NaN, 2)));
    }

    [Fact]
    public void Wrong_float_results_disagree()
    {
        Assert.False(OutputTolerance.Agree(Floats(1, 2, 3), Floats(2, 3, 4)));
        Assert.False(OutputTolerance.Agree(Floats(1, 2, 3), Floats(1, 2, 3.1f)));
        Assert.False(OutputTolerance.Agree(Floats(1, 2), Floats(1, float.NaN)));
        Assert.False(OutputTolerance.Agree(Floats(1, 2, 3), Floats(1, 2)));
        Assert.False(OutputTolerance.Agree(Floats(1, 2), Ints([1, 2])));
    }

    [Fact]
    public void Integer_results_may_differ_only_in_a_few_boundary_elements()
    {
        var labels = Enumerable.Range(0, 1000).Select(i => i % 7).ToArray();
        var swapped = (int[])labels.Clone();
        for (var i = 0; i < 10; i++)
            swapped[i * 100] = (swapped[i * 100] + 1) % 7;
        Assert.True(OutputTolerance.Agree(Ints(labels), Ints(swapped)));

        swapped[1] = (swapped[1] + 1) % 7;
        Assert.False(OutputTolerance.Agree(Ints(labels), Ints(swapped)));
        Assert.False(OutputTolerance.Agree(Ints(labels), Ints([.. labels.Select(l => l + 1)])));
    }
}
