using Dapper;
using Npgsql;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Ledger;

/// <summary>One line of a ledger transaction; <paramref name="WorkerId"/> names the node a payout, mint or slash was for.</summary>
public sealed record Posting(string AccountId, string Kind, decimal Amount, string? WorkerId = null);

/// <summary>Writes balanced transactions. All money movement in the service goes through here.</summary>
public static class CreditLedger
{
    /// <summary>Where starting credits (grants) come from: the only account that may go below zero. Work is never minted from it.</summary>
    public const string Mint = "sys:mint";
    public const string Escrow = "sys:escrow";
    public const string Fees = "sys:fees";

    /// <summary>
    /// The system accounts (mint, escrow, fees) keep no balance row: their balance is the sum of their postings.
    /// Every other account (people's and operators' stakes) keeps one, which may not go below zero.
    /// </summary>
    public static bool IsSystem(string accountId) => accountId.StartsWith("sys:", StringComparison.Ordinal);

    /// <summary>The account holding an operator's stake: one per operator, with a balance row like a person's.</summary>
    public static string StakeOf(string operatorAccountId) => $"stake:{operatorAccountId}";

    /// <summary>Credits have at most 6 fractional digits.</summary>
    public static decimal Round(decimal amount) => Math.Round(amount, 6, MidpointRounding.ToEven);

    /// <summary>Rounds towards zero to 6 digits: for shares of an amount, so the shares never add up to more than it.</summary>
    public static decimal RoundDown(decimal amount) => Math.Round(amount, 6, MidpointRounding.ToZero);

    /// <summary>
    /// The most any one price, escrow or reward may be: 10^12 credits (the most an account is granted). The
    /// columns are numeric(20, 6), 14 integer digits, so amounts this size can still be summed into balances;
    /// a figure beyond it is clamped before it reaches the ledger instead of overflowing it.
    /// </summary>
    public const decimal MaxAmount = 1_000_000_000_000m;

    /// <summary>The most GFLOP any figure counts for (a petaFLOP-day is about 8.6e7 GFLOP): rates times it stay far inside a decimal.</summary>
    public const double MaxGflop = 1e15;

    /// <summary>
    /// A GFLOP figure as a decimal for pricing: NaN, infinities, zero and negatives are no work; more than
    /// <see cref="MaxGflop"/> counts as that much. Never throws, whatever the double.
    /// </summary>
    public static decimal GflopOf(double gflop) => double.IsFinite(gflop) && gflop > 0 ? (decimal)Math.Min(gflop, MaxGflop) : 0m;

    /// <summary>An amount of credits clamped to [0, <see cref="MaxAmount"/>] and rounded to 6 digits.</summary>
    public static decimal Bounded(decimal amount) => Round(Math.Clamp(amount, 0m, MaxAmount));

    private static readonly string LowBalanceType = typeof(AccountBalanceLow).FullName!;

    /// <summary>
    /// Follows a CTE <c>b</c> that updated one balance row and returned (id, before, balance, low_balance_threshold):
    /// when the posting took the balance from at or above the account's threshold to below it, queues an
    /// <see cref="AccountBalanceLow"/> in the outbox, in the posting's own statement and so its own transaction:
    /// a posting applied once (the idempotency key) warns once, and a replayed one, which updates no row, not at
    /// all. The body is written here rather than by <c>MessageOutbox</c> so the common posting stays one round
    /// trip; it is the camelCase JSON <c>PlatformJson</c> reads (the tests read it back through the relay), and
    /// OccurredAt is the transaction's time, as the ledger transaction's created_at.
    /// </summary>
    private const string LowBalanceWarning = """
        , low as (
            insert into outbox (message_id, message_type, body)
            select gen_random_uuid(), @lowType,
                   jsonb_build_object('accountId', b.id, 'balance', b.balance, 'threshold', b.low_balance_threshold, 'occurredAt', now())
            from b where b.balance < b.low_balance_threshold and b.before >= b.low_balance_threshold
        )
        """;

    /// <summary>
    /// Applies a transaction once and returns its id, or null, changing nothing, when its idempotency key was
    /// already used. A balance that would go below zero fails the database's check constraint and aborts the
    /// caller's transaction, so callers check funds first. A posting that takes a balance below its account's
    /// low-balance threshold queues an <see cref="AccountBalanceLow"/> in the outbox (see <see cref="LowBalanceWarning"/>):
    /// callers commit with <c>MessageOutbox.CommitAsync</c> so the relay sends it at once.
    /// </summary>
    public static async Task<long?> PostAsync(NpgsqlTransaction tx, string idempotencyKey, string? jobId, IReadOnlyList<Posting> postings, CancellationToken ct)
    {
        if (postings.Sum(p => p.Amount) != 0m)
            throw new InvalidOperationException($"transaction {idempotencyKey} does not balance");
        // The column keeps 6 digits: a seventh would be rounded away in the database and the sum would no longer be zero.
        if (postings.Any(p => p.Amount != Round(p.Amount)))
            throw new InvalidOperationException($"transaction {idempotencyKey} has an amount with more than 6 fractional digits");
        var connection = tx.Connection!;
        var moving = postings.Where(p => p.Amount != 0m).ToList();

        // Balance rows are locked in account order, so two transactions touching the same accounts never wait on
        // each other in a cycle. The system accounts take part in every job: a balance row for them would make
        // every ledger transaction in the network queue behind one row lock, so only the others keep one.
        var balances = moving.Where(p => !IsSystem(p.AccountId))
            .GroupBy(p => p.AccountId).Select(g => (AccountId: g.Key, Amount: g.Sum(p => p.Amount)))
            .Where(b => b.Amount != 0m).OrderBy(b => b.AccountId, StringComparer.Ordinal).ToList();

        // One round trip writes the transaction, all its postings and the first balance: a transaction's cost is
        // mostly its round trips and its commit. Nothing but the key's insert happens when the key is taken.
        var first = balances.Count > 0 ? balances[0] : default;
        var id = await connection.ExecuteScalarAsync<long?>(new CommandDefinition(
            $"""
            with t as (
                insert into transactions (idempotency_key, job_id) values (@idempotencyKey, @jobId)
                on conflict (idempotency_key) do nothing returning id
            ), p as (
                insert into postings (transaction_id, account_id, kind, amount, worker_id)
                select t.id, x.account_id, x.kind, x.amount, x.worker_id
                from t, unnest(@accounts::text[], @kinds::text[], @amounts::numeric[], @workers::text[]) as x(account_id, kind, amount, worker_id)
            ), b as (
                update accounts set balance = balance + @firstAmount
                where id = @firstAccount and exists (select 1 from t)
                returning id, balance - @firstAmount as before, balance, low_balance_threshold
            ){LowBalanceWarning}
            select id from t
            """,
            new
            {
                idempotencyKey,
                jobId,
                accounts = moving.Select(p => p.AccountId).ToArray(),
                kinds = moving.Select(p => p.Kind).ToArray(),
                amounts = moving.Select(p => p.Amount).ToArray(),
                workers = moving.Select(p => p.WorkerId).ToArray(),
                firstAccount = first.AccountId,
                firstAmount = first.Amount,
                lowType = LowBalanceType,
            }, tx, cancellationToken: ct));
        if (id is null)
            return null;
        foreach (var (accountId, amount) in balances.Skip(1))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                with b as (
                    update accounts set balance = balance + @amount where id = @accountId
                    returning id, balance - @amount as before, balance, low_balance_threshold
                ){LowBalanceWarning}
                select 1
                """,
                new { accountId, amount, lowType = LowBalanceType }, tx, cancellationToken: ct));
        }
        return id;
    }

    /// <summary>The id of the transaction applied under <paramref name="idempotencyKey"/>, or null.</summary>
    public static Task<long?> TransactionIdAsync(NpgsqlTransaction tx, string idempotencyKey, CancellationToken ct) =>
        tx.Connection!.ExecuteScalarAsync<long?>(new CommandDefinition(
            "select id from transactions where idempotency_key = @idempotencyKey", new { idempotencyKey }, tx, cancellationToken: ct));

    /// <summary>Creates an account if it does not exist yet (accounts are opened by request or on first payout).</summary>
    public static Task EnsureAccountAsync(NpgsqlTransaction tx, string accountId, string kind, CancellationToken ct) =>
        tx.Connection!.ExecuteAsync(new CommandDefinition(
            "insert into accounts (id, kind) values (@accountId, @kind) on conflict (id) do nothing",
            new { accountId, kind }, tx, cancellationToken: ct));
}
