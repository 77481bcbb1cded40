using Platform.Rewards.Escrow;

namespace Platform.Rewards.Tests.Escrow;

public sealed class PricingOptionsTests
{
    [Fact]
    public void Price_is_rate_times_gflop_with_a_minimum_charge()
    {
        var pricing = new PricingOptions();

        Assert.Equal(5m, pricing.PriceOf("matmul", 10));
        Assert.Equal(pricing.MinimumCharge, pricing.PriceOf("matmul", 1e-9));
        Assert.Equal(10m, pricing.PriceOf("not-priced", 10));
    }

    [Fact]
    public void Prices_have_at_most_six_decimal_places()
    {
        var price = new PricingOptions().PriceOf("matmul", 1.23456789);

        Assert.Equal(decimal.Round(price, 6), price);
    }
}
