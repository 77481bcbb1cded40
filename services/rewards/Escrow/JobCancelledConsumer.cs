using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>
/// A cancelled job costs nothing: its escrow goes back, once. A cancel can overtake the job's JobSubmitted;
/// then a closed escrow row is written first, so the late JobSubmitted finds it and escrows nothing.
/// </summary>
public sealed class JobCancelledConsumer(NpgsqlDataSource db) : IConsumer<JobCancelled>
{
    public async Task Consume(ConsumeContext<JobCancelled> context)
    {
        var m = context.Message;
        var jobId = m.JobId.Value;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into escrows (job_id, client_account_id, kernel, amount, status, cost, closed_at)
            values (@jobId, @client, '', 0, 'refunded', 0, now()) on conflict (job_id) do nothing
            """, new { jobId, client = m.ClientAccountId.Value }, tx, cancellationToken: ct));
        var escrow = await connection.QuerySingleAsync<(string Client, decimal Amount, string Status)>(new CommandDefinition(
            "select client_account_id, amount, status from escrows where job_id = @jobId for update", new { jobId }, tx, cancellationToken: ct));
        if (escrow.Status == "held")
        {
            await CreditLedger.PostAsync(tx, $"refund:{jobId}", jobId,
            [
                new Posting(CreditLedger.Escrow, "refund", -escrow.Amount),
                new Posting(escrow.Client, "refund", escrow.Amount),
            ], ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "update escrows set status = 'refunded', cost = 0, closed_at = now() where job_id = @jobId", new { jobId }, tx, cancellationToken: ct));
        }
        await tx.CommitAsync(ct);
    }
}
