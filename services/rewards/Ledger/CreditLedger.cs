using Dapper;
using Npgsql;

namespace Platform.Rewards.Ledger;

public sealed record Posting(string AccountId, string Kind, decimal Amount);

/// <summary>Writes balanced transactions. All money movement in the service goes through here.</summary>
public static class CreditLedger
{
    public const string Mint = "sys:mint";
    public const string Escrow = "sys:escrow";
    public const string Fees = "sys:fees";

    public static bool IsSystem(string accountId) => accountId.StartsWith("sys:", StringComparison.Ordinal);

    /// <summary>Credits have at most 6 fractional digits.</summary>
    public static decimal Round(decimal amount) => Math.Round(amount, 6, MidpointRounding.ToEven);

    /// <summary>
    /// Applies a transaction once: returns false, changing nothing, when its idempotency key was already used.
    /// A balance that would go below zero fails the database's check constraint and aborts the caller's
    /// transaction, so callers check funds first.
    /// </summary>
    public static async Task<bool> PostAsync(NpgsqlTransaction tx, string idempotencyKey, string? jobId, IReadOnlyList<Posting> postings, CancellationToken ct)
    {
        if (postings.Sum(p => p.Amount) != 0m)
            throw new InvalidOperationException($"transaction {idempotencyKey} does not balance");
        var connection = tx.Connection!;
        var id = await connection.ExecuteScalarAsync<long?>(new CommandDefinition(
            """
            insert into transactions (idempotency_key, job_id) values (@idempotencyKey, @jobId)
            on conflict (idempotency_key) do nothing returning id
            """, new { idempotencyKey, jobId }, tx, cancellationToken: ct));
        if (id is null)
            return false;
        var moving = postings.Where(p => p.Amount != 0m).ToList();
        foreach (var posting in moving)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "insert into postings (transaction_id, account_id, kind, amount) values (@id, @AccountId, @Kind, @Amount)",
                new { id, posting.AccountId, posting.Kind, posting.Amount }, tx, cancellationToken: ct));
        }
        // Balance rows are locked last and in account order: held for as short a time as possible, and two
        // transactions touching the same accounts never wait on each other in a cycle.
        // The system accounts (mint, escrow, fees) take part in every job: keeping a balance row for them would
        // make every ledger transaction in the network queue behind one row lock. Their balance is the sum of
        // their postings; only people's accounts, which must not go below zero, keep a balance row.
        foreach (var (accountId, amount) in moving.Where(p => !IsSystem(p.AccountId))
                     .GroupBy(p => p.AccountId).Select(g => (g.Key, g.Sum(p => p.Amount))).OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update accounts set balance = balance + @amount where id = @accountId",
                new { accountId, amount }, tx, cancellationToken: ct));
        }
        return true;
    }

    /// <summary>Creates an account if it does not exist yet (accounts are opened by request or on first payout).</summary>
    public static Task EnsureAccountAsync(NpgsqlTransaction tx, string accountId, string kind, CancellationToken ct) =>
        tx.Connection!.ExecuteAsync(new CommandDefinition(
            "insert into accounts (id, kind) values (@accountId, @kind) on conflict (id) do nothing",
            new { accountId, kind }, tx, cancellationToken: ct));
}
