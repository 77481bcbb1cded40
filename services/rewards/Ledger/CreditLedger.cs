using Dapper;
using Npgsql;
using Platform.Contracts.Messages;

using Platform.Rewards.Metrics;

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
    /// callers commit with <c>MessageOutbox.CommitAsync</c> so the relay sends it at once. A batch of one of
    /// <see cref="PostManyAsync"/>: one round trip when at most one balance row moves, the common case.
    /// </summary>
    public static async Task<long?> PostAsync(NpgsqlTransaction tx, string idempotencyKey, string? jobId, IReadOnlyList<Posting> postings, CancellationToken ct) =>
        (await PostManyAsync(tx, [(idempotencyKey, jobId, postings)], ct)).TryGetValue(idempotencyKey, out var id) ? id : null;

    /// <summary>
    /// Applies many transactions at once, each once: returns the ids of those applied now by idempotency key; a
    /// key already used is left out and changes nothing. Each transaction must balance and keep 6 digits, as in
    /// <see cref="PostAsync"/>. Every balance row moves once, by what the fresh transactions move it together, so a
    /// batch of settlements waits on each hot row once instead of once per transaction. Two consequences of the
    /// sum, the same as single postings for a batch of one: the balance check (not below zero) and the
    /// low-balance warning apply to the balance before and after the whole batch, so a batch that dips an account
    /// below zero and back is accepted and one that crosses its threshold warns once. Callers that debit people's
    /// accounts must therefore check funds per transaction before, as they do for single postings.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, long>> PostManyAsync(NpgsqlTransaction tx,
        IReadOnlyList<(string IdempotencyKey, string? JobId, IReadOnlyList<Posting> Postings)> transactions, CancellationToken ct)
    {
        foreach (var (key, _, postings) in transactions)
        {
            if (postings.Sum(p => p.Amount) != 0m)
                throw new InvalidOperationException($"transaction {key} does not balance");
            // The column keeps 6 digits: a seventh would be rounded away in the database and the sum would no longer be zero.
            if (postings.Any(p => p.Amount != Round(p.Amount)))
                throw new InvalidOperationException($"transaction {key} has an amount with more than 6 fractional digits");
        }
        // A key twice in one call would insert one transaction and join both entries' postings to it.
        if (transactions.DistinctBy(t => t.IdempotencyKey).Count() != transactions.Count)
            throw new InvalidOperationException("a batch of ledger transactions uses an idempotency key twice");
        if (transactions.Count == 0)
            return new Dictionary<string, long>();
        var connection = tx.Connection!;
        var moving = transactions.SelectMany(t => t.Postings.Where(p => p.Amount != 0m).Select(p => (t.IdempotencyKey, Posting: p))).ToList();

        // The system accounts take part in every job: a balance row for them would make every ledger transaction
        // in the network queue behind one row lock, so only the others keep one. Rows are locked in account order
        // (ordinal, as "C" collates), so two transactions touching the same accounts never wait on each other in a
        // cycle; an update of several rows at once locks them in whatever order its plan reads them, hence the
        // lock first. One row alone cannot take part in a cycle here: no lock, one round trip. The lock may
        // include accounts of transactions already applied: it is only held a little longer than needed.
        var balanceAccounts = moving.Where(m => !IsSystem(m.Posting.AccountId)).Select(m => m.Posting.AccountId).Distinct().ToArray();
        if (balanceAccounts.Length > 1)
            await connection.ExecuteAsync(new CommandDefinition(
                "select 1 from accounts where id = any(@balanceAccounts) order by id collate \"C\" for update",
                new { balanceAccounts }, tx, cancellationToken: ct));

        // One statement writes the fresh transactions, all their postings and every balance: a transaction's cost
        // is mostly its round trips and its commit. Postings of a key already taken join no row of t and are
        // neither written nor summed into a balance.
        var applied = await connection.QueryAsync<(long Id, string Key)>(new CommandDefinition(
            $"""
            with t as (
                insert into transactions (idempotency_key, job_id)
                select x.idempotency_key, x.job_id
                from unnest(@keys::text[], @jobIds::text[]) with ordinality as x(idempotency_key, job_id, n)
                order by x.n
                on conflict (idempotency_key) do nothing returning id, idempotency_key
            ), f as (
                select t.id, x.account_id, x.kind, x.amount, x.worker_id, x.n
                from unnest(@postingKeys::text[], @accounts::text[], @kinds::text[], @amounts::numeric[], @workers::text[])
                    with ordinality as x(idempotency_key, account_id, kind, amount, worker_id, n)
                join t on t.idempotency_key = x.idempotency_key
            ), p as (
                insert into postings (transaction_id, account_id, kind, amount, worker_id)
                select f.id, f.account_id, f.kind, f.amount, f.worker_id from f order by f.n
            ), d as (
                select f.account_id, sum(f.amount) as amount from f
                where f.account_id not like 'sys:%' group by f.account_id having sum(f.amount) <> 0
            ), b as (
                update accounts a set balance = a.balance + d.amount from d where a.id = d.account_id
                returning a.id, a.balance - d.amount as before, a.balance, a.low_balance_threshold
            ){LowBalanceWarning}
            select id, idempotency_key from t
            """,
            new
            {
                keys = transactions.Select(t => t.IdempotencyKey).ToArray(),
                jobIds = transactions.Select(t => t.JobId).ToArray(),
                postingKeys = moving.Select(m => m.IdempotencyKey).ToArray(),
                accounts = moving.Select(m => m.Posting.AccountId).ToArray(),
                kinds = moving.Select(m => m.Posting.Kind).ToArray(),
                amounts = moving.Select(m => m.Posting.Amount).ToArray(),
                workers = moving.Select(m => m.Posting.WorkerId).ToArray(),
                lowType = LowBalanceType,
            }, tx, cancellationToken: ct));
        var result = applied.ToDictionary(a => a.Key, a => a.Id, StringComparer.Ordinal);
        RewardsMetrics.Posted(moving.Where(m => result.ContainsKey(m.IdempotencyKey)).Select(m => m.Posting));
        return result;
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
