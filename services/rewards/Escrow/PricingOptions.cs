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

    /// <summary>
    /// Reward per GFLOP of the job's estimate, for every accepted attempt (spot checks included), paid out of the
    /// job's network fee: a job's rewards and bonuses together never exceed its fee (see <see cref="Minting.FeeFundedMint"/>).
    /// </summary>
    [Range(0, 1_000_000)]
    public decimal MintPerGflop { get; set; } = 0.1m;

    /// <summary>
    /// Extra share of the mint for an attempt whose joules, as the scheduler checked them, per GFLOP were below the
    /// network median of the last <see cref="EfficiencyWindow"/> recorded attempts: 0.2 mints 20% more (within the
    /// job's fee). With no history there is no bonus.
    /// </summary>
    [Range(0, 10)]
    public decimal EfficiencyBonus { get; set; } = 0.2m;

    /// <summary>How many of the most recent attempts with an energy figure make up the network median.</summary>
    [Range(1, 1_000_000)]
    public int EfficiencyWindow { get; set; } = 1000;

    /// <summary>One-time fee, in credits per GiB, for keeping a client's blob forever.</summary>
    [Range(0, 1_000_000)]
    public decimal PinFeePerGib { get; set; } = 1m;

    /// <summary>Smallest pin fee: every pin costs a record and copies on several nodes, however small.</summary>
    [Range(0, 1_000_000)]
    public decimal MinimumPinFee { get; set; } = 0.001m;

    public decimal PinFeeOf(long bytes) => PinFeePerGib == 0 ? 0 : Ledger.CreditLedger.Round(Math.Max(MinimumPinFee, PinFeePerGib * bytes / (1L << 30)));

    /// <summary>
    /// What keeping a job's output forever costs: <see cref="PinFeePerGib"/> by the size the kernel's shape model plans
    /// (the network's figure, not the node's), once per job however many replicas computed it, paid to the network
    /// like a pin fee. No minimum: <see cref="MinimumCharge"/> already covers a small output's record and copies, so a
    /// tiny job's output adds millionths at most, while a degenerate shape's huge output costs what keeping it does.
    /// </summary>
    public decimal OutputFeeOf(long outputBytes) =>
        outputBytes <= 0 ? 0m : Ledger.CreditLedger.Bounded(PinFeePerGib * outputBytes / (1L << 30));

    /// <summary>
    /// A job's escrow: its price once per replica the client asked for, and its output fee once, at most
    /// <see cref="Ledger.CreditLedger.MaxAmount"/>.
    /// </summary>
    public decimal EscrowOf(string kernel, double estimatedGflop, int replicas, long outputBytes = 0) =>
        Ledger.CreditLedger.Bounded(PriceOf(kernel, estimatedGflop) * Math.Max(1, replicas) + OutputFeeOf(outputBytes));

    /// <summary>
    /// The price of <paramref name="gflop"/> of a kernel's work, at least <see cref="MinimumCharge"/> and at most
    /// <see cref="Ledger.CreditLedger.MaxAmount"/>; a GFLOP figure that is not a finite positive number is no work.
    /// </summary>
    public decimal PriceOf(string kernel, double gflop)
    {
        var rate = PricePerGflop.TryGetValue(kernel, out var p) ? p : DefaultPricePerGflop;
        return Ledger.CreditLedger.Bounded(Math.Max(MinimumCharge, rate * Ledger.CreditLedger.GflopOf(gflop)));
    }

    /// <summary>
    /// An escrow still held this long after its job was submitted is asked about (EscrowReconciler): every job ends
    /// within the scheduler's Scheduler:JobDeadline (24 h), so by then its ending message was lost. Asked again after
    /// as long again while it stays held.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "365.00:00:00")]
    public TimeSpan EscrowCheckAfter { get; set; } = TimeSpan.FromHours(25);

    /// <summary>How often rewards looks for escrows held past <see cref="EscrowCheckAfter"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan EscrowCheckInterval { get; set; } = TimeSpan.FromMinutes(5);
}
