namespace Platform.Contracts.Messages;

/// <summary>
/// Request from storage to rewards, before a new pin is committed: charge its one-time fee to the owner.
/// Answered with <see cref="PinFeeCharged"/> or <see cref="PinFeeRefused"/>. Charged at most once per CID
/// however often it is asked.
/// </summary>
public sealed record ChargePinFee
{
    public required Cid Cid { get; init; }
    public required AccountId Owner { get; init; }
    public required long Size { get; init; }
}

public sealed record PinFeeCharged
{
    public required Cid Cid { get; init; }
    /// <summary>What this request cost the owner: 0 when the CID was already paid for, or the owner pins for free.</summary>
    public required decimal Fee { get; init; }
}

public sealed record PinFeeRefused
{
    public required Cid Cid { get; init; }
    public required decimal Fee { get; init; }
    public required decimal Balance { get; init; }
    public required string Reason { get; init; }
}
