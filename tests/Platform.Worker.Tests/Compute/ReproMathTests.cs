using Platform.Worker.Compute;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// ReproMath's exp, tanh and sigmoid against double-precision Math.Exp / Math.Tanh: within 2 ulp on a sweep of
/// every 61st float (about 70 million inputs, both signs, all magnitudes) plus the edges, and exact on the special
/// values the class comment promises.
/// </summary>
public sealed class ReproMathTests(ITestOutputHelper output)
{
    private const int Stride = 61;

    [Fact]
    public void Exp_is_within_2_ulp_of_double_precision_exp_over_the_float_range()
    {
        var worst = Sweep(ReproMath.Exp, Math.Exp, out var at);
        output.WriteLine($"exp: max error {worst:F3} ulp at x = {at:R} (0x{BitConverter.SingleToInt32Bits(at):X8})");
        Assert.True(worst <= 2, $"exp is off by {worst} ulp at x = {at:R}");
    }

    [Fact]
    public void Tanh_is_within_2_ulp_of_double_precision_tanh_over_the_float_range()
    {
        var worst = Sweep(ReproMath.Tanh, Math.Tanh, out var at);
        output.WriteLine($"tanh: max error {worst:F3} ulp at x = {at:R} (0x{BitConverter.SingleToInt32Bits(at):X8})");
        Assert.True(worst <= 2, $"tanh is off by {worst} ulp at x = {at:R}");
    }

    [Fact]
    public void Sigmoid_is_within_3_ulp_of_double_precision_sigmoid_and_zero_only_where_the_exact_value_is_subnormal()
    {
        // One exp (≤ 2 ulp, damped by 1 + e^-x) plus an add and a divide, each rounded. Below -ExpOverflow, e^-x
        // overflows and 1/(1 + Inf) is +0: the definition flushes there, where the exact value is below 2^-126.
        Assert.True(1 / (1 + Math.Exp(ReproMath.ExpOverflow)) < 1.17549435e-38);
        var worst = Sweep(ReproMath.Sigmoid, x => x < -ReproMath.ExpOverflow ? 0 : 1 / (1 + Math.Exp(-x)), out var at);
        output.WriteLine($"sigmoid: max error {worst:F3} ulp at x = {at:R}");
        Assert.True(worst <= 3, $"sigmoid is off by {worst} ulp at x = {at:R}");
    }

    [Fact]
    public void Special_values_are_exact()
    {
        Assert.Equal(1f, ReproMath.Exp(0f));
        Assert.Equal(1f, ReproMath.Exp(-0f));
        Assert.Equal(float.PositiveInfinity, ReproMath.Exp(float.PositiveInfinity));
        AssertBits(0f, ReproMath.Exp(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, ReproMath.Exp(ReproMath.ExpOverflow + 0.00001f));
        Assert.True(float.IsFinite(ReproMath.Exp(ReproMath.ExpOverflow)));
        AssertBits(0f, ReproMath.Exp(ReproMath.ExpUnderflow - 0.00001f));
        Assert.Equal(float.Epsilon, ReproMath.Exp(-103.2789f));

        AssertBits(0f, ReproMath.Tanh(0f));
        AssertBits(-0f, ReproMath.Tanh(-0f));
        Assert.Equal(1f, ReproMath.Tanh(float.PositiveInfinity));
        Assert.Equal(-1f, ReproMath.Tanh(float.NegativeInfinity));
        Assert.Equal(1f, ReproMath.Tanh(ReproMath.TanhSaturation));
        Assert.Equal(-1f, ReproMath.Tanh(-1e30f));
        Assert.Equal(float.Epsilon, ReproMath.Tanh(float.Epsilon));

        Assert.Equal(0.5f, ReproMath.Sigmoid(0f));
        Assert.Equal(1f, ReproMath.Sigmoid(float.PositiveInfinity));
        AssertBits(0f, ReproMath.Sigmoid(float.NegativeInfinity));

        // NaN in, the same NaN out (payload and sign kept).
        foreach (var bits in new[] { unchecked((int)0x7FC00000), unchecked((int)0xFFC00001), 0x7F800001, 0x7FC12345 })
        {
            var nan = BitConverter.Int32BitsToSingle(bits);
            Assert.Equal(bits, BitConverter.SingleToInt32Bits(ReproMath.Exp(nan)));
            Assert.Equal(bits, BitConverter.SingleToInt32Bits(ReproMath.Tanh(nan)));
            Assert.True(float.IsNaN(ReproMath.Sigmoid(nan)));
        }
    }

    [Fact]
    public void Results_are_pinned_to_the_bit_so_a_change_of_the_op_sequence_is_caught()
    {
        // Any backend porting ReproMath must give exactly these bits; a changed coefficient, threshold or order
        // of operations moves at least one of them.
        float[] inputs = [-103.5f, -87.3f, -10.25f, -1f, -0.3f, 1e-3f, 0.5f, 0.7f, 1f, 2.5f, 9.9f, 20f, 88.5f];
        var exp = inputs.Select(x => BitConverter.SingleToInt32Bits(ReproMath.Exp(x)).ToString("X8")).ToArray();
        var tanh = inputs.Select(x => BitConverter.SingleToInt32Bits(ReproMath.Tanh(x)).ToString("X8")).ToArray();
        output.WriteLine($"exp:  {string.Join(' ', exp)}");
        output.WriteLine($"tanh: {string.Join(' ', tanh)}");
        Assert.Equal(ExpectedExp, string.Join(' ', exp));
        Assert.Equal(ExpectedTanh, string.Join(' ', tanh));
    }

    private const string ExpectedExp = "00000001 0084C38B 38144CD4 3EBC5AB2 3F3DA643 3F8020C9 3FD3094C 4000E153 402DF854 4142EB7F 469BB4BA 4DE75844 7F4CDCC4";
    private const string ExpectedTanh = "BF800000 BF800000 BF800000 BF42F7D6 BE9526EE 3A83126C 3EEC9A9F 3F1AB7D9 3F42F7D6 3F7C92C1 3F800000 3F800000 3F800000";

    private static void AssertBits(float expected, float actual) =>
        Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(actual));

    /// <summary>
    /// The largest error in ulp of the float result over every 61st bit pattern (NaNs skipped) and the edges of
    /// the float range. Errors are measured against the exact (double) value in units of the float spacing there.
    /// </summary>
    private static double Sweep(Func<float, float> f, Func<double, double> exact, out float worstAt)
    {
        var worst = 0.0;
        var at = 0f;
        for (long bits = 0; bits <= uint.MaxValue; bits += Stride)
            Check((int)(uint)bits);
        foreach (var edge in new[] { 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x3F800000, 0x3F200000, 0x3F1FFFFF, 0x41200000, 0x411FFFFF,
                     BitConverter.SingleToInt32Bits(ReproMath.ExpOverflow), BitConverter.SingleToInt32Bits(ReproMath.ExpUnderflow) })
        {
            for (var delta = -64; delta <= 64; delta++)
            {
                Check(edge + delta);
                Check(unchecked(edge + delta) ^ unchecked((int)0x80000000));
            }
        }
        worstAt = at;
        return worst;

        void Check(int bits)
        {
            var x = BitConverter.Int32BitsToSingle(bits);
            if (float.IsNaN(x))
                return;
            var error = Ulps(f(x), exact(x));
            if (error > worst)
                (worst, at) = (error, x);
        }
    }

    private static double Ulps(float actual, double exact)
    {
        if (double.IsNaN(exact))
            return float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        var rounded = (float)exact;
        if (float.IsInfinity(rounded) || float.IsInfinity(actual))
            return rounded == actual ? 0 : double.PositiveInfinity;
        // The float spacing at |exact|: the gap above the largest float not above it.
        var below = (float)Math.Abs(exact);
        if (below > Math.Abs(exact))
            below = MathF.BitDecrement(below);
        var ulp = (double)MathF.BitIncrement(below) - below;
        return Math.Abs(actual - exact) / ulp;
    }
}
