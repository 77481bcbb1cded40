using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Scheduler.Workers;

/// <summary>Running totals for the network view. Adding is not idempotent, so each message is counted once through the inbox.</summary>
public sealed class NetworkTotalsConsumer(NpgsqlDataSource db) : IConsumer<CreditsMinted>, IConsumer<BlobPinned>
{
    public Task Consume(ConsumeContext<CreditsMinted> context) =>
        AddAsync(context, [("credits_minted", context.Message.Amount)]);

    public Task Consume(ConsumeContext<BlobPinned> context) =>
        AddAsync(context, [("bytes_pinned", context.Message.Size), ("blobs_pinned", 1m)]);

    private async Task AddAsync(ConsumeContext context, (string Name, decimal Amount)[] additions)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (await Inbox.TryRecordAsync(tx, nameof(NetworkTotalsConsumer), context.MessageId, ct))
        {
            foreach (var (name, amount) in additions)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    "update network_totals set value = value + @amount where name = @name", new { name, amount }, tx, cancellationToken: ct));
            }
        }
        await tx.CommitAsync(ct);
    }
}
