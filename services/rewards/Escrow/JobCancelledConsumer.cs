using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Escrow;

/// <summary>A cancelled job costs nothing: its escrow goes back, once.</summary>
public sealed class JobCancelledConsumer(NpgsqlDataSource db) : IConsumer<JobCancelled>
{
    public async Task Consume(ConsumeContext<JobCancelled> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await EscrowRefund.RefundOnceAsync(tx, context.Message.JobId.Value, context.Message.ClientAccountId.Value, ct);
        await tx.CommitAsync(ct);
    }
}
