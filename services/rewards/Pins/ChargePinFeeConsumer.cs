using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Escrow;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Pins;

/// <summary>
/// The one-time fee for keeping a blob forever, by size, paid by the client who pins it first. Operators'
/// pins are the outputs of jobs, whose price the client already paid, so they pin for free. The idempotency
/// key is the CID: a blob is paid for once, whoever asks and however often.
/// </summary>
public sealed class ChargePinFeeConsumer(NpgsqlDataSource db, MessageOutbox outbox, IOptions<PricingOptions> pricing) : IConsumer<ChargePinFee>
{
    public async Task Consume(ConsumeContext<ChargePinFee> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        var owner = m.Owner.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var account = await connection.QuerySingleOrDefaultAsync<(string Kind, decimal Balance)?>(new CommandDefinition(
            "select kind, balance from accounts where id = @owner for update", new { owner }, tx, cancellationToken: ct));
        var fee = pricing.Value.PinFeeOf(m.Size);
        if (account is not { Kind: "client" } || fee == 0)
        {
            await tx.CommitAsync(ct);
            await context.RespondAsync(new PinFeeCharged { Cid = m.Cid, Fee = 0 });
            return;
        }
        var key = $"pin-fee:{m.Cid}";
        var paid = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select exists (select 1 from transactions where idempotency_key = @key)", new { key }, tx, cancellationToken: ct));
        if (!paid && account.Value.Balance < fee)
        {
            await tx.CommitAsync(ct);
            await context.RespondAsync(new PinFeeRefused { Cid = m.Cid, Fee = fee, Balance = account.Value.Balance, Reason = "insufficient_credits" });
            return;
        }
        var charged = !paid && await CreditLedger.PostAsync(tx, key, null,
        [
            new Posting(owner, "pin-fee", -fee),
            new Posting(CreditLedger.Fees, "pin-fee", fee),
        ], ct) is not null;
        // The fee may take the balance below the owner's low-balance threshold, whose warning is in the outbox.
        await outbox.CommitAsync(tx, ct);
        await context.RespondAsync(new PinFeeCharged { Cid = m.Cid, Fee = charged ? fee : 0 });
    }
}
