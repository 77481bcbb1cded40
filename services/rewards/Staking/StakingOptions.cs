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

    /// <summary>
    /// How long an unstake waits for the scheduler to say whether the operator has results awaiting verification
    /// or penalties not yet applied; without an answer in time the stake stays where it is (503).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan ExposureTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
