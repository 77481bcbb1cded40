using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using Platform.Contracts.Tensors;
using Platform.Scheduler.Verification;
using Xunit.Abstractions;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// The comparison of two workers' float outputs, on random tensors: it is symmetric, a tensor agrees with itself and
/// with honest rounding, and neither a non-finite value nor a huge finite one on one side can make outputs agree.
/// </summary>
public sealed class OutputTolerancePropertyTests(ITestOutputHelper output)
{
    // Fixed, so a failure replays exactly; FsCheck prints it again with any counterexample.
    private const ulong Seed = 20261203;
    private const ulong Gamma = 1442695040888963407;

    private Config Seeded(int tests)
    {
        output.WriteLine($"FsCheck seed {Seed}, gamma {Gamma}, {tests} tests");
        return Config.QuickThrowOnFailure.WithMaxTest(tests)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Seed, Gamma), FSharpOption<int>.None)));
    }

    private static readonly float[] NonFinite = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001))];

    private static readonly float[] Huge = [1e20f, -1e25f, 3e38f, float.MaxValue, float.MinValue];

    // Values across twelve orders of magnitude, both signs, exact zeros now and then.
    private static Gen<float> Finite() => Gen.Frequency(
        (1, Gen.Constant(0f)),
        (20, from mantissa in Gen.Choose(-1_000_000, 1_000_000)
             from exponent in Gen.Choose(-6, 6)
             select (float)(mantissa / 1e6 * Math.Pow(10, exponent))));

    private static Gen<float[]> Tensor(Gen<float> element) => Gen.Choose(1, 48).SelectMany(n => element.ArrayOf(n));

    private static Gen<float[]> FiniteTensor() => Tensor(Finite());

    // Mostly finite, with the odd NaN or infinity anywhere.
    private static Gen<float[]> AnyTensor() => Tensor(Gen.Frequency((12, Finite()), (1, Gen.Elements(NonFinite))));

    private static NpyArray Of(float[] values) => NpyArray.FromFloat32(values, values.Length);

    private static bool Agree(float[] a, float[] b) => OutputTolerance.Agree(Of(a), Of(b));

    /// <summary>A second tensor derived from the first in every way the other properties use, and unrelated ones.</summary>
    private static Gen<(float[] A, float[] B)> Pairs() =>
        from a in AnyTensor()
        from how in Gen.Choose(0, 4)
        from index in Gen.Choose(0, a.Length - 1)
        from other in Tensor(Finite()).Select(t => t.Length == a.Length ? t : [.. Enumerable.Range(0, a.Length).Select(i => t[i % t.Length])])
        from odd in Gen.Elements([.. NonFinite, .. Huge])
        from noise in Gen.Choose(-10, 10)
        select (a, how switch
        {
            0 => (float[])a.Clone(),
            1 => [.. a.Select(v => v * (1 + noise * 1e-6f))],
            2 => With(a, index, odd),
            3 => With(other, index, odd),
            _ => other,
        });

    private static float[] With(float[] values, int index, float value)
    {
        var copy = (float[])values.Clone();
        copy[index] = value;
        return copy;
    }

    [Fact]
    public void The_comparison_is_symmetric()
    {
        Check.One(Seeded(3000), Prop.ForAll(Arb.From(Pairs()), p => Assert.Equal(Agree(p.A, p.B), Agree(p.B, p.A))));
    }

    [Fact]
    public void A_tensor_agrees_with_itself_and_with_honest_rounding()
    {
        Check.One(Seeded(2000), Prop.ForAll(Arb.From(AnyTensor()), a => Assert.True(Agree(a, (float[])a.Clone()))));
        // Another backend summing in another order: each element off by up to 1e-5 of itself, a hundredth of the
        // relative bound, and a millionth absolute.
        var honest = from a in FiniteTensor()
                     from noise in Gen.Choose(-10, 10).ArrayOf(a.Length)
                     select (a, b: a.Select((v, i) => v * (1 + noise[i] * 1e-6f) + noise[i] * 1e-7f).ToArray());
        Check.One(Seeded(2000), Prop.ForAll(Arb.From(honest), p => Assert.True(Agree(p.a, p.b), $"[{string.Join(", ", p.a)}] vs [{string.Join(", ", p.b)}]")));
    }

    [Fact]
    public void A_non_finite_value_on_one_side_disagrees_with_anything_else_there()
    {
        // Into an element that was finite, or over a different non-finite value: both sides, whatever the rest holds.
        var cases = from a in AnyTensor()
                    from index in Gen.Choose(0, a.Length - 1)
                    from odd in Gen.Elements(NonFinite)
                    where !(float.IsNaN(odd) && float.IsNaN(a[index])) && odd != a[index]
                    select (a, b: With(a, index, odd));
        Check.One(Seeded(3000), Prop.ForAll(Arb.From(cases), p =>
        {
            Assert.False(Agree(p.a, p.b));
            Assert.False(Agree(p.b, p.a));
        }));
    }

    [Fact]
    public void Neither_a_non_finite_nor_a_huge_finite_value_turns_a_disagreement_into_agreement()
    {
        // Garbage that disagrees with the honest tensor still disagrees once it carries one extreme element, which
        // would otherwise set the scale that bounds rounding (as one +Inf in the later tensor used to).
        var cases = from honest in FiniteTensor()
                    from garbage in Tensor(Finite()).Select(t => Enumerable.Range(0, honest.Length).Select(i => t[i % t.Length]).ToArray())
                    from index in Gen.Choose(0, honest.Length - 1)
                    from odd in Gen.Elements([.. NonFinite, .. Huge])
                    where !Agree(honest, garbage)
                    select (honest, garbage: With(garbage, index, odd));
        Check.One(Seeded(3000), Prop.ForAll(Arb.From(cases), p =>
        {
            Assert.False(Agree(p.honest, p.garbage));
            Assert.False(Agree(p.garbage, p.honest));
        }));
    }

    [Fact]
    public void One_infinity_in_a_replica_does_not_make_garbage_agree()
    {
        var honest = Of([1, 2, 3, 4]);
        Assert.False(OutputTolerance.Agree(honest, Of([900, -7, 12, float.PositiveInfinity])));
        Assert.False(OutputTolerance.Agree(Of([900, -7, 12, float.PositiveInfinity]), honest));
        Assert.False(OutputTolerance.Agree(honest, Of([900, -7, 12, float.MaxValue])));
        Assert.False(OutputTolerance.Agree(Of([1, 2, 3, float.PositiveInfinity]), Of([1, 2, 3, float.NegativeInfinity])));
        Assert.False(OutputTolerance.Agree(Of([1, 2, 3, float.NaN]), Of([1, 2, 3, float.PositiveInfinity])));
        Assert.True(OutputTolerance.Agree(Of([1, 2, 3, float.PositiveInfinity]), Of([1, 2, 3, float.PositiveInfinity])));
    }
}
