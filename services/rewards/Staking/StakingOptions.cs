using System.ComponentModel.DataAnnotations;

namespace Platform.Rewards.Staking;

public sealed class StakingOptions
{
    public const string SectionName = "Staking";

    /// <summary>Share of an operator's current stake taken (to sys:fees) for each penalized attempt.</summary>
    [Range(0, 1)]
    public decimal SlashFraction { get; set; } = 0.5m;

    /// <summary>
    /// How long after its last payout, mint or slash an operator must wait to unstake: long enough for the
    /// network to check its results, so a cheater cannot take its stake out before it is slashed.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "365.00:00:00")]
    public TimeSpan UnbondingPeriod { get; set; } = TimeSpan.FromDays(1);
}
