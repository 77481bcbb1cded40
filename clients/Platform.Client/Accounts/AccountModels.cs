namespace Platform.Client;

/// <summary>GET /v1/account. Credits are decimals with at most 6 fractional digits.</summary>
/// <param name="LowBalanceThreshold">The balance below which the owner asked to be warned; null when none is set.</param>
/// <param name="LowBalance">The balance is below <paramref name="LowBalanceThreshold"/>: top up or lower it before jobs are rejected.</param>
public sealed record AccountView(string AccountId, string Role, decimal Balance, decimal Escrowed, decimal Earned, decimal Staked,
    decimal? LowBalanceThreshold = null, bool LowBalance = false);

/// <summary>One ledger transaction as it touched this account; <see cref="Amount"/> is negative when credits left it.</summary>
/// <param name="AccountId">The account the entry moved: the caller's, or for an operator its stake account (stake:&lt;id&gt;).</param>
/// <param name="Kind">What moved the credits: grant, escrow, refund, settle, payout, fee, mint, efficiency-bonus, pin-fee, stake, unstake or slash.</param>
public sealed record LedgerEntry(long TransactionId, DateTimeOffset CreatedAt, string AccountId, string Kind, decimal Amount, string? JobId, string? WorkerId, string? IdempotencyKey);

public sealed record LedgerPage(IReadOnlyList<LedgerEntry> Entries, string? NextCursor);

/// <summary>
/// GET /v1/account/earnings: what an operator's nodes earned, by worker and by UTC day (the last 90 days with
/// earnings): <see cref="Paid"/> its share of job prices, <see cref="Minted"/> new credits for verified work
/// (efficiency bonuses included).
/// </summary>
public sealed record Earnings(string AccountId, decimal Paid, decimal Minted, IReadOnlyList<WorkerEarnings> Workers, IReadOnlyList<DayEarnings> Days)
{
    public decimal Total => Paid + Minted;
}

public sealed record WorkerEarnings(string WorkerId, decimal Paid, decimal Minted, long Jobs)
{
    public decimal Earned => Paid + Minted;
}

/// <param name="Date">The UTC day, yyyy-MM-dd.</param>
public sealed record DayEarnings(string Date, decimal Paid, decimal Minted)
{
    public decimal Earned => Paid + Minted;
}

/// <summary>POST /v1/admin/accounts: <paramref name="Role"/> is client, operator or admin.</summary>
public sealed record CreateAccountRequest(string Role, string Name, decimal Credits);

/// <summary>The new account; <see cref="Key"/> is shown this once and stored only as a hash.</summary>
public sealed record CreatedAccount(string AccountId, string Role, string Name, string Key);

/// <summary>POST /v1/account/node-keys: a key for one node of the operator; <see cref="Key"/> is shown this once.</summary>
public sealed record CreatedNodeKey(string Id, string Key, int Workers, DateTimeOffset CreatedAt);

/// <summary>GET /v1/account/node-keys: a node key of the operator, how many workers it may enroll and those it enrolled.</summary>
public sealed record NodeKeyInfo(string Id, int Workers, IReadOnlyList<string> WorkerIds, DateTimeOffset CreatedAt);
