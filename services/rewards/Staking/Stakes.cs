using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Staking;

/// <summary>What a stake change did, or why it was refused.</summary>
public enum StakeOutcome
{
    Applied,
    /// <summary>The idempotency key was used before for the same change: nothing happened again.</summary>
    Replayed,
    NotFound,
    NotOperator,
    InsufficientBalance,
    InsufficientStake,
    Unbonding,
    /// <summary>The idempotency key was used before for a different amount.</summary>
    KeyReused,
}

public sealed record StakeResult(StakeOutcome Outcome, decimal Balance = 0, decimal Staked = 0, long? Version = null);

/// <summary>
/// Moves credits between an operator's balance and its stake account, and slashes stakes. Every change is one
/// ledger transaction under an idempotency key and publishes <see cref="StakeChanged"/> through the outbox in
/// the same database transaction, versioned by the ledger transaction id.
/// </summary>
public static class Stakes
{
    /// <summary>Earnings and slashes that start (or restart) the unbonding period.</summary>
    private const string RecentActivity = """
        select exists (
            select 1 from postings p join transactions t on t.id = p.transaction_id
            where ((p.account_id = @account and p.kind in ('payout', 'mint', 'efficiency-bonus'))
                or (p.account_id = @stake and p.kind = 'slash'))
              and t.created_at > @since)
        """;

    /// <summary>
    /// Moves <paramref name="amount"/> from the operator's balance to its stake (or back, when <paramref name="unstake"/>).
    /// With <paramref name="dryRun"/> it checks everything and moves nothing: <see cref="StakeOutcome.Applied"/> then
    /// says the move would be made (the unstake endpoint asks this before it asks the scheduler, so a refusal the
    /// ledger can give on its own does not wait on another service).
    /// </summary>
    public static async Task<StakeResult> MoveAsync(
        NpgsqlDataSource db, MessageOutbox outbox, string account, decimal amount, bool unstake, string idempotencyKey,
        DateTimeOffset now, TimeSpan unbondingPeriod, CancellationToken ct, bool dryRun = false)
    {
        var stake = CreditLedger.StakeOf(account);
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // Rows locked in the ledger's order (the operator's account sorts before its stake), and the stake row
        // before the ledger transaction's id is drawn: changes to one stake get ids in the order they commit, so a
        // StakeChanged's version really is newer than every stake it replaces.
        var owner = await connection.QuerySingleOrDefaultAsync<(string Kind, decimal Balance)?>(new CommandDefinition(
            "select kind, balance from accounts where id = @account for update", new { account }, tx, cancellationToken: ct));
        if (owner is null)
            return new StakeResult(StakeOutcome.NotFound);
        if (owner.Value.Kind != "operator")
            return new StakeResult(StakeOutcome.NotOperator);
        await CreditLedger.EnsureAccountAsync(tx, stake, "stake", ct);
        var staked = await connection.ExecuteScalarAsync<decimal>(new CommandDefinition(
            "select balance from accounts where id = @stake for update", new { stake }, tx, cancellationToken: ct));

        var previous = await connection.QuerySingleOrDefaultAsync<(long Id, decimal Amount)?>(new CommandDefinition(
            "select t.id, p.amount from transactions t join postings p on p.transaction_id = t.id and p.account_id = @stake where t.idempotency_key = @idempotencyKey",
            new { idempotencyKey, stake }, tx, cancellationToken: ct));
        if (previous is { } done)
        {
            var same = done.Amount == (unstake ? -amount : amount);
            return new StakeResult(same ? StakeOutcome.Replayed : StakeOutcome.KeyReused, owner.Value.Balance, staked, done.Id);
        }

        if (!unstake && owner.Value.Balance < amount)
            return new StakeResult(StakeOutcome.InsufficientBalance, owner.Value.Balance, staked);
        if (unstake && staked < amount)
            return new StakeResult(StakeOutcome.InsufficientStake, owner.Value.Balance, staked);
        if (unstake && await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                RecentActivity, new { account, stake, since = now - unbondingPeriod }, tx, cancellationToken: ct)))
            return new StakeResult(StakeOutcome.Unbonding, owner.Value.Balance, staked);

        var kind = unstake ? "unstake" : "stake";
        var moved = unstake ? -amount : amount;
        if (dryRun)
            return new StakeResult(StakeOutcome.Applied, owner.Value.Balance - moved, staked + moved);
        var id = await CreditLedger.PostAsync(tx, idempotencyKey, null,
        [
            new Posting(account, kind, -moved),
            new Posting(stake, kind, moved),
        ], ct) ?? throw new InvalidOperationException($"stake transaction {idempotencyKey} appeared under a lock");
        await outbox.EnqueueAsync(tx, new StakeChanged { OperatorAccountId = AccountId.From(account), Staked = staked + moved, Version = id, OccurredAt = now }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        return new StakeResult(StakeOutcome.Applied, owner.Value.Balance - moved, staked + moved, id);
    }

    /// <summary>
    /// Slashes a share of the penalized operator's current stake to the fees account, once per penalized attempt.
    /// Returns the amount slashed; an operator with no stake loses nothing, and the penalty is still recorded.
    /// </summary>
    public static async Task<decimal> SlashAsync(NpgsqlDataSource db, MessageOutbox outbox, WorkerPenalized penalty, decimal fraction, DateTimeOffset now, CancellationToken ct)
    {
        var account = penalty.OperatorAccountId.Value;
        var stake = CreditLedger.StakeOf(account);
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var staked = await connection.ExecuteScalarAsync<decimal?>(new CommandDefinition(
            "select balance from accounts where id = @stake for update", new { stake }, tx, cancellationToken: ct)) ?? 0m;
        // Never more than the stake, whatever the rounding.
        var slashed = Math.Min(staked, CreditLedger.RoundDown(staked * fraction));
        var fresh = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into penalties (attempt_id, job_id, worker_id, operator_account_id, reason, slashed)
            values (@AttemptId, @JobId, @WorkerId, @account, @Reason, @slashed) on conflict (attempt_id) do nothing
            """,
            new { AttemptId = penalty.AttemptId.Value, JobId = penalty.JobId.Value, WorkerId = penalty.WorkerId.Value, account, penalty.Reason, slashed },
            tx, cancellationToken: ct));
        if (fresh == 0 || slashed == 0)
        {
            await tx.CommitAsync(ct);
            return 0m;
        }
        var worker = penalty.WorkerId.Value;
        var id = await CreditLedger.PostAsync(tx, $"slash:{penalty.AttemptId}", penalty.JobId.Value,
        [
            new Posting(stake, "slash", -slashed, worker),
            new Posting(CreditLedger.Fees, "slash", slashed, worker),
        ], ct);
        if (id is { } version)
            await outbox.EnqueueAsync(tx, new StakeChanged { OperatorAccountId = penalty.OperatorAccountId, Staked = staked - slashed, Version = version, OccurredAt = now }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        return id is null ? 0m : slashed;
    }
}
