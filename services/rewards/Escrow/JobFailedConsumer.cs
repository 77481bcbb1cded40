using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Escrow;

/// <summary>A failed job costs the client nothing: its whole escrow goes back, once.</summary>
public sealed class JobFailedConsumer(NpgsqlDataSource db) : IConsumer<JobFailed>
{
    public async Task Consume(ConsumeContext<JobFailed> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await EscrowRefund.RefundOnceAsync(tx, context.Message.JobId.Value, context.Message.ClientAccountId.Value, ct);
        await tx.CommitAsync(ct);
    }
}
