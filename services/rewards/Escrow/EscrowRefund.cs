using Dapper;
using Npgsql;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

public static class EscrowRefund
{
    /// <summary>
    /// Gives a job's whole escrow back to its client, once. When the job was never escrowed (the ending
    /// overtook its JobSubmitted), a closed escrow row is written instead, so the late JobSubmitted finds it
    /// and escrows nothing.
    /// </summary>
    public static async Task RefundOnceAsync(NpgsqlTransaction tx, string jobId, string client, CancellationToken ct)
    {
        var connection = tx.Connection!;
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into escrows (job_id, client_account_id, kernel, amount, status, cost, closed_at)
            values (@jobId, @client, '', 0, 'refunded', 0, now()) on conflict (job_id) do nothing
            """, new { jobId, client }, tx, cancellationToken: ct));
        var escrow = await connection.QuerySingleAsync<(string Client, decimal Amount, string Status)>(new CommandDefinition(
            "select client_account_id, amount, status from escrows where job_id = @jobId for update", new { jobId }, tx, cancellationToken: ct));
        if (escrow.Status != "held")
            return;
        await CreditLedger.PostAsync(tx, $"refund:{jobId}", jobId,
        [
            new Posting(CreditLedger.Escrow, "refund", -escrow.Amount),
            new Posting(escrow.Client, "refund", escrow.Amount),
        ], ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "update escrows set status = 'refunded', cost = 0, closed_at = now() where job_id = @jobId", new { jobId }, tx, cancellationToken: ct));
    }
}
