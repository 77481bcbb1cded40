namespace Platform.Client;

/// <summary>GET /v1/account. Credits are decimals with at most 6 fractional digits.</summary>
public sealed record AccountView(string AccountId, string Role, decimal Balance, decimal Escrowed, decimal Earned, decimal Staked);

/// <summary>One ledger transaction as it touched this account; <see cref="Amount"/> is negative when credits left it.</summary>
/// <param name="Kind">What moved the credits, such as escrow, refund, payment, payout, mint, stake or pin-fee.</param>
public sealed record LedgerEntry(string TransactionId, DateTimeOffset CreatedAt, string Kind, decimal Amount, string? JobId, string? WorkerId, string? IdempotencyKey);

public sealed record LedgerPage(IReadOnlyList<LedgerEntry> Entries, string? NextCursor);

/// <summary>GET /v1/account/earnings: what an operator's nodes earned, by worker and by day.</summary>
public sealed record Earnings
{
    public decimal Total { get; init; }
    public IReadOnlyList<WorkerEarnings> Workers { get; init; } = [];
    public IReadOnlyList<DayEarnings> Days { get; init; } = [];
}

public sealed record WorkerEarnings(string WorkerId, decimal Earned, int Jobs);

public sealed record DayEarnings(DateOnly Day, decimal Earned, int Jobs);

/// <summary>POST /v1/admin/accounts: <paramref name="Role"/> is client, operator or admin.</summary>
public sealed record CreateAccountRequest(string Role, string Name, decimal Credits);

/// <summary>The new account; <see cref="Key"/> is shown this once and stored only as a hash.</summary>
public sealed record CreatedAccount(string AccountId, string Role, string Name, string Key);
