using System.ComponentModel.DataAnnotations;

namespace Platform.Rewards.Escrow;

public sealed class PricingOptions
{
    public const string SectionName = "Pricing";

    /// <summary>Credits per GFLOP by kernel; kernels not listed use <see cref="DefaultPricePerGflop"/>.</summary>
    public Dictionary<string, decimal> PricePerGflop { get; set; } = new() { ["vector-add"] = 2m, ["matmul"] = 0.5m };

    [Range(0, 1_000_000)]
    public decimal DefaultPricePerGflop { get; set; } = 1m;

    /// <summary>Smallest charge for any job: covers moving its inputs and outputs.</summary>
    [Range(0, 1_000_000)]
    public decimal MinimumCharge { get; set; } = 0.01m;

    /// <summary>Share of each job's price kept by the network; the rest pays the operator.</summary>
    [Range(0, 1)]
    public decimal NetworkFee { get; set; } = 0.1m;

    /// <summary>Newly minted credits per verified GFLOP, paid to the operator on top of the price.</summary>
    [Range(0, 1_000_000)]
    public decimal MintPerGflop { get; set; } = 0.1m;

    /// <summary>One-time fee, in credits per GiB, for keeping a client's blob forever.</summary>
    [Range(0, 1_000_000)]
    public decimal PinFeePerGib { get; set; } = 1m;

    /// <summary>Smallest pin fee: every pin costs a record and copies on several nodes, however small.</summary>
    [Range(0, 1_000_000)]
    public decimal MinimumPinFee { get; set; } = 0.001m;

    public decimal PinFeeOf(long bytes) => PinFeePerGib == 0 ? 0 : Ledger.CreditLedger.Round(Math.Max(MinimumPinFee, PinFeePerGib * bytes / (1L << 30)));

    public decimal PriceOf(string kernel, double gflop)
    {
        var rate = PricePerGflop.TryGetValue(kernel, out var p) ? p : DefaultPricePerGflop;
        return Ledger.CreditLedger.Round(Math.Max(MinimumCharge, rate * (decimal)gflop));
    }
}
