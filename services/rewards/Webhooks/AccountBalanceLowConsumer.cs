using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// Queues a low-balance warning for the account's webhook, if it has one. The event's message id (the outbox keeps it
/// on every send) makes a redelivered warning one delivery; the warning is only queued here, the sender delivers it.
/// </summary>
public sealed class AccountBalanceLowConsumer(NpgsqlDataSource db, WebhookSender sender, IOptions<WebhookOptions> options) : IConsumer<AccountBalanceLow>
{
    public async Task Consume(ConsumeContext<AccountBalanceLow> context)
    {
        if (!options.Value.Enabled)
            return;
        var m = context.Message;
        var messageId = context.MessageId ?? throw new InvalidOperationException("an AccountBalanceLow without a message id cannot be delivered once");
        var body = WebhookEvents.Body(WebhookEvents.BalanceLow, m.OccurredAt, new { accountId = m.AccountId.Value, balance = m.Balance, threshold = m.Threshold });
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        if (await WebhookEvents.QueueAsync(connection, messageId, m.AccountId.Value, WebhookEvents.BalanceLow, body, context.CancellationToken))
            sender.Wake();
    }
}
