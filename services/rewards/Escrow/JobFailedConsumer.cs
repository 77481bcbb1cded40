using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>A failed job costs the client nothing: its whole escrow goes back, once.</summary>
public sealed class JobFailedConsumer(NpgsqlDataSource db) : IConsumer<JobFailed>
{
    public async Task Consume(ConsumeContext<JobFailed> context)
    {
        var jobId = context.Message.JobId.Value;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var escrow = await connection.QuerySingleOrDefaultAsync<(string Client, decimal Amount, string Status)>(new CommandDefinition(
            "select client_account_id, amount, status from escrows where job_id = @jobId for update", new { jobId }, tx, cancellationToken: ct));
        if (escrow == default)
            throw new InvalidOperationException($"job {jobId} failed but was never escrowed; retrying until its JobSubmitted is processed");
        if (escrow.Status != "held")
            return;
        await CreditLedger.PostAsync(tx, $"refund:{jobId}", jobId,
        [
            new Posting(CreditLedger.Escrow, "refund", -escrow.Amount),
            new Posting(escrow.Client, "refund", escrow.Amount),
        ], ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "update escrows set status = 'refunded', cost = 0, closed_at = now() where job_id = @jobId", new { jobId }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }
}
