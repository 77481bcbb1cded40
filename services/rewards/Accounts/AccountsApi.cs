using System.Globalization;
using System.Text;
using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Accounts;

public static class AccountsApi
{
    public const int DefaultLedgerLimit = 50;
    public const int MaxLedgerLimit = 200;

    /// <summary>The earnings view shows this many most recent days with earnings.</summary>
    public const int EarningsDays = 90;

    public static IBusRegistrationConfigurator AddAccounts(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<OpenAccountConsumer>();
        return bus;
    }

    public static RouteGroupBuilder MapAccounts(this IEndpointRouteBuilder app)
    {
        // Every route here is the caller's own account, which only the gateway can vouch for.
        var group = app.MapGroup("/v1/account").WithTags("Account").RequireGatewayProof();
        group.MapGet("/", GetAccount);
        group.MapGet("/ledger", GetLedger);
        group.MapGet("/earnings", GetEarnings);
        group.MapGet("/spending", GetSpending);
        group.MapPut("/low-balance", SetLowBalance);
        return group;
    }

    private const string AccountQuery = """
        select a.id as AccountId, a.kind as Role, a.balance as Balance,
               coalesce((select sum(e.amount) from escrows e where e.client_account_id = a.id and e.status = 'held'), 0) as Escrowed,
               coalesce((select sum(p.amount) from postings p where p.account_id = a.id and p.kind in ('payout', 'mint', 'efficiency-bonus')), 0) as Earned,
               coalesce((select s.balance from accounts s where s.id = @stake), 0) as Staked,
               a.low_balance_threshold as LowBalanceThreshold,
               coalesce(a.balance < a.low_balance_threshold, false) as LowBalance,
               (select w.url from webhooks w where w.account_id = a.id) as WebhookUrl
        from accounts a where a.id = @account
        """;

    internal static async Task<Results<Ok<AccountResponse>, ProblemHttpResult>> GetAccount(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var account = AccountOf(http);
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<AccountResponse>(new CommandDefinition(
            AccountQuery, new { account, stake = CreditLedger.StakeOf(account) }, cancellationToken: ct));
        return row is null ? AccountNotFound() : TypedResults.Ok(row);
    }

    /// <summary>
    /// Sets or clears (null) the account's low-balance threshold and answers the account as GET does. A threshold
    /// raised above the balance is a crossing like a posting's: it queues an AccountBalanceLow in the same
    /// transaction, unless the balance was already below the old threshold (the owner was warned then).
    /// </summary>
    internal static async Task<Results<Ok<AccountResponse>, ProblemHttpResult, ValidationProblem>> SetLowBalance(
        HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, TimeProvider clock, CancellationToken ct)
    {
        var account = AccountOf(http);
        var (body, malformed) = await JsonBody.ReadAsync<LowBalanceRequest>(http, ct);
        if (malformed is not null)
            return malformed;
        var threshold = body!.Threshold;
        if (threshold < 0)
            return Problems.Validation(new Dictionary<string, string[]> { ["threshold"] = ["must be zero or more credits, or null to clear it"] }, "threshold may not be negative");
        if (threshold is { } t && t != CreditLedger.Round(t))
            return Problems.Validation(new Dictionary<string, string[]> { ["threshold"] = ["credits have at most 6 fractional digits"] }, "threshold has more than 6 fractional digits");
        // The column holds 20 digits, 6 of them fractional.
        if (threshold >= 100_000_000_000_000m)
            return Problems.Validation(new Dictionary<string, string[]> { ["threshold"] = ["must be below 100000000000000 credits"] }, "threshold is too large");

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // Locked like a posting locks it, so a posting and a threshold change never both miss (or both send) a crossing.
        var current = await connection.QuerySingleOrDefaultAsync<(string Kind, decimal Balance, decimal? Threshold)?>(new CommandDefinition(
            "select kind, balance, low_balance_threshold from accounts where id = @account for update", new { account }, tx, cancellationToken: ct));
        if (current is not { } row)
            return AccountNotFound();
        if (row.Kind is not ("client" or "admin"))
            return Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "Only clients set a low-balance threshold",
                "the warning is for accounts that pay for jobs; operators are paid");
        await connection.ExecuteAsync(new CommandDefinition(
            "update accounts set low_balance_threshold = @threshold where id = @account", new { account, threshold }, tx, cancellationToken: ct));
        var wasLow = row.Balance < row.Threshold;
        if (!wasLow && row.Balance < threshold)
            await outbox.EnqueueAsync(tx, new AccountBalanceLow { AccountId = AccountId.From(account), Balance = row.Balance, Threshold = threshold.Value, OccurredAt = clock.GetUtcNow() }, ct: ct);
        var response = await connection.QuerySingleAsync<AccountResponse>(new CommandDefinition(
            AccountQuery, new { account, stake = CreditLedger.StakeOf(account) }, tx, cancellationToken: ct));
        await outbox.CommitAsync(tx, ct);
        return TypedResults.Ok(response);
    }

    // Newest first; the cursor is the last entry's (transaction id, posting id), so pages neither skip nor repeat
    // entries while new ones are written.
    private const string LedgerQuery = """
        select p.transaction_id as TransactionId, t.created_at as CreatedAt, p.account_id as AccountId, p.kind, p.amount,
               t.job_id as JobId, p.worker_id as WorkerId, t.idempotency_key as IdempotencyKey, p.id as PostingId
        from postings p join transactions t on t.id = p.transaction_id
        where p.account_id in (@account, @stake)
          and (@beforeTransaction is null or (p.transaction_id, p.id) < (@beforeTransaction, @beforePosting))
        order by p.transaction_id desc, p.id desc
        limit @take
        """;

    // timestamptz reads as a UTC DateTime.
    private sealed record LedgerRow(long TransactionId, DateTime CreatedAt, string AccountId, string Kind, decimal Amount, string? JobId, string? WorkerId, string IdempotencyKey, long PostingId);

    internal static async Task<Results<Ok<LedgerPage>, ProblemHttpResult>> GetLedger(HttpContext http, NpgsqlDataSource db, string? cursor, string? limit, CancellationToken ct)
    {
        var account = AccountOf(http);
        var take = DefaultLedgerLimit;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out take) || take is < 1 or > MaxLedgerLimit))
            return Problems.BadRequest("invalid-limit", "Invalid limit", $"limit is a whole number from 1 to {MaxLedgerLimit}");
        (long Transaction, long Posting)? before = null;
        if (!string.IsNullOrEmpty(cursor))
        {
            if (DecodeCursor(cursor) is not { } position)
                return Problems.BadRequest("invalid-cursor", "Invalid cursor", "pass back the nextCursor of a previous page unchanged");
            before = position;
        }

        await using var connection = await db.OpenConnectionAsync(ct);
        var kind = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "select kind from accounts where id = @account", new { account }, cancellationToken: ct));
        if (kind is null)
            return AccountNotFound();
        var rows = (await connection.QueryAsync<LedgerRow>(new CommandDefinition(LedgerQuery, new
        {
            account,
            stake = CreditLedger.StakeOf(account),
            beforeTransaction = before?.Transaction,
            beforePosting = before?.Posting,
            take = take + 1,
        }, cancellationToken: ct))).ToList();
        var page = rows.Take(take).ToList();
        var next = rows.Count > take ? EncodeCursor(page[^1].TransactionId, page[^1].PostingId) : null;
        return TypedResults.Ok(new LedgerPage(
            page.Select(r => new LedgerEntry(r.TransactionId, new DateTimeOffset(DateTime.SpecifyKind(r.CreatedAt, DateTimeKind.Utc)), r.AccountId, r.Kind, r.Amount, r.JobId, r.WorkerId, r.IdempotencyKey)).ToList(), next));
    }

    private const string WorkerEarningsQuery = """
        select p.worker_id as WorkerId,
               coalesce(sum(p.amount) filter (where p.kind = 'payout'), 0) as Paid,
               coalesce(sum(p.amount) filter (where p.kind in ('mint', 'efficiency-bonus')), 0) as Minted,
               count(distinct t.job_id) as Jobs
        from postings p join transactions t on t.id = p.transaction_id
        where p.account_id = @account and p.kind in ('payout', 'mint', 'efficiency-bonus') and p.worker_id is not null
        group by p.worker_id
        order by p.worker_id
        """;

    private const string DailyEarningsQuery = """
        select to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD') as Date,
               coalesce(sum(p.amount) filter (where p.kind = 'payout'), 0) as Paid,
               coalesce(sum(p.amount) filter (where p.kind in ('mint', 'efficiency-bonus')), 0) as Minted
        from postings p join transactions t on t.id = p.transaction_id
        where p.account_id = @account and p.kind in ('payout', 'mint', 'efficiency-bonus')
        group by 1
        order by 1 desc
        limit @days
        """;

    internal static async Task<Results<Ok<EarningsResponse>, ProblemHttpResult>> GetEarnings(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var account = AccountOf(http);
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, account, kind => kind == "operator", "Only operators have earnings",
                "earnings are reported for operator accounts, whose nodes do work", ct) is { } refused)
            return refused;
        var workers = (await connection.QueryAsync<WorkerEarnings>(new CommandDefinition(WorkerEarningsQuery, new { account }, cancellationToken: ct))).ToList();
        var days = (await connection.QueryAsync<DailyEarnings>(new CommandDefinition(DailyEarningsQuery, new { account, days = EarningsDays }, cancellationToken: ct))).ToList();
        return TypedResults.Ok(new EarningsResponse(account, workers.Sum(w => w.Paid), workers.Sum(w => w.Minted), workers, days));
    }

    // What a client spent, by day: what went into escrow for jobs less what came back (refunds of failed, cancelled or
    // cheaper-than-escrowed jobs), and the fees for pinning data, on the day each posting was made.
    private const string DailySpendingQuery = """
        select to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD') as Date,
               -coalesce(sum(p.amount), 0) as Spent,
               count(*) filter (where p.kind = 'escrow')::bigint as Jobs
        from postings p join transactions t on t.id = p.transaction_id
        where p.account_id = @account and p.kind in ('escrow', 'refund', 'pin-fee')
        group by 1
        order by 1 desc
        limit @days
        """;

    internal static async Task<Results<Ok<SpendingResponse>, ProblemHttpResult>> GetSpending(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var account = AccountOf(http);
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, account, kind => kind is "client" or "admin", "Only clients have spending",
                "spending is reported for accounts that pay for jobs; operators are paid", ct) is { } refused)
            return refused;
        var days = (await connection.QueryAsync<DailySpending>(new CommandDefinition(DailySpendingQuery, new { account, days = EarningsDays }, cancellationToken: ct))).ToList();
        return TypedResults.Ok(new SpendingResponse(account, days.Sum(d => d.Spent), days));
    }

    // A report for some kinds of account only: 404 for an account with no ledger entries, 403 for another kind.
    private static async Task<ProblemHttpResult?> RefusedAsync(NpgsqlConnection connection, string account, Func<string, bool> allowed, string title, string detail,
        CancellationToken ct)
    {
        var kind = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "select kind from accounts where id = @account", new { account }, cancellationToken: ct));
        if (kind is null)
            return AccountNotFound();
        return allowed(kind) ? null : Problems.Create(StatusCodes.Status403Forbidden, "forbidden", title, detail);
    }

    private static string AccountOf(HttpContext http) => http.GatewayAccount();

    internal static ProblemHttpResult AccountNotFound() => Problems.NotFound("account-not-found", "Account not found", "this account has no ledger entries yet");

    private static string EncodeCursor(long transaction, long posting) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(FormattableString.Invariant($"{transaction}.{posting}"))).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static (long, long)? DecodeCursor(string cursor)
    {
        try
        {
            var base64 = cursor.Replace('-', '+').Replace('_', '/');
            base64 = base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=');
            var parts = Encoding.UTF8.GetString(Convert.FromBase64String(base64)).Split('.');
            return parts.Length == 2
                && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var transaction)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var posting)
                ? (transaction, posting) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
