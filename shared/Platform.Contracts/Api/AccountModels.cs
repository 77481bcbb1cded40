namespace Platform.Contracts.Api;

/// <summary>
/// An account's figures. <paramref name="LowBalanceThreshold"/> is the balance below which its owner wants a warning
/// (null: none); <paramref name="LowBalance"/> is true while the balance is below it; <paramref name="WebhookUrl"/> is
/// where the warning is also POSTed (null: nowhere; see GET /v1/account/webhook).
/// </summary>
public sealed record AccountResponse(string AccountId, string Role, decimal Balance, decimal Escrowed, decimal Earned, decimal Staked,
    decimal? LowBalanceThreshold = null, bool LowBalance = false, string? WebhookUrl = null);

/// <summary>Sets the low-balance threshold; a null or absent <paramref name="Threshold"/> clears it.</summary>
public sealed record LowBalanceRequest(decimal? Threshold);

/// <summary>One posting on the caller's account (or, for an operator, on its stake account).</summary>
public sealed record LedgerEntry(long TransactionId, DateTimeOffset CreatedAt, string AccountId, string Kind, decimal Amount, string? JobId, string? WorkerId, string IdempotencyKey);

public sealed record LedgerPage(IReadOnlyList<LedgerEntry> Entries, string? NextCursor);

public sealed record WorkerEarnings(string WorkerId, decimal Paid, decimal Minted, long Jobs);

public sealed record DailyEarnings(string Date, decimal Paid, decimal Minted);

/// <summary>An operator's earnings: payouts (its share of job prices) and mints (efficiency bonuses included).</summary>
public sealed record EarningsResponse(string AccountId, decimal Paid, decimal Minted, IReadOnlyList<WorkerEarnings> Workers, IReadOnlyList<DailyEarnings> Days);

/// <param name="Spent">Job prices escrowed less refunds, plus pinning fees, on the day of each posting.</param>
/// <param name="Jobs">Jobs whose price was escrowed that day.</param>
public sealed record DailySpending(string Date, decimal Spent, long Jobs);

/// <summary>What a client spent (GET /v1/account/spending): jobs (escrowed less refunded) and pinning fees, per UTC day, newest first (at most 90 days).</summary>
/// <param name="Spent">The sum of <paramref name="Days"/>: over those days, not the account's whole life.</param>
public sealed record SpendingResponse(string AccountId, decimal Spent, IReadOnlyList<DailySpending> Days);

public sealed record StakeRequest(decimal? Amount);

/// <summary>The operator's balance and stake after the change; <paramref name="Version"/> is the ledger transaction id.</summary>
public sealed record StakeResponse(string AccountId, decimal Balance, decimal Staked, long Version);

/// <summary>Where the account's events are sent (POST, signed as Standard Webhooks describes).</summary>
public sealed record WebhookRequest(string? Url);

/// <summary>
/// The account's webhook. <paramref name="Secret"/> (<c>whsec_</c> and base64) signs every delivery and is shown only in
/// the answer to the PUT that set it; <paramref name="Deliveries"/> are the most recent, newest first.
/// </summary>
public sealed record WebhookView(string Url, DateTimeOffset CreatedAt, IReadOnlyList<WebhookDelivery> Deliveries, string? Secret = null);

/// <summary>
/// One event sent, or being sent, to the webhook: <paramref name="Status"/> is pending (with
/// <paramref name="NextAttemptAt"/>), delivered (a 2xx answer), failed (every attempt answered otherwise) or dropped
/// (the webhook was removed first); <paramref name="LastError"/> is why the last attempt failed.
/// </summary>
public sealed record WebhookDelivery(string Id, string Type, string Status, int Attempts, int? LastStatus, string? LastError, DateTimeOffset CreatedAt,
    DateTimeOffset? NextAttemptAt, DateTimeOffset? DeliveredAt);

/// <summary>POST /v1/admin/accounts: <paramref name="Role"/> is client, operator or admin; optional here so the gateway can say which is missing.</summary>
public sealed record CreateAccountRequest(string? Role, string? Name, decimal? Credits);

/// <summary>The new account; <paramref name="Key"/> is shown this once and stored only as a hash.</summary>
public sealed record CreateAccountResponse(string AccountId, string Role, string Name, string Key);

/// <summary>A node key as its operator sees it: the key itself only in the answer that made it.</summary>
/// <param name="Workers">How many worker ids the key may enroll (1 unless asked otherwise).</param>
public sealed record NodeKeyCreated(string Id, string Key, int Workers, DateTimeOffset CreatedAt);

/// <param name="WorkerIds">The workers it enrolled, first come; once there are <paramref name="Workers"/> it enrolls no other.</param>
public sealed record NodeKeyView(string Id, int Workers, IReadOnlyList<string> WorkerIds, DateTimeOffset CreatedAt);

/// <param name="Workers">How many worker ids the key may enroll, 1 to 1000 (default 1): more only for replicas that share one key.</param>
public sealed record CreateNodeKeyRequest(int? Workers);
