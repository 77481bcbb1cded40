using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>
/// Settles a completed job: the client pays the actual price (never more than was escrowed), the rest is
/// refunded, the operator is paid its share and minted its reward. The escrow row moves from held to settled
/// under a row lock, so a redelivered or duplicated JobCompleted pays nothing twice.
/// </summary>
public sealed class JobCompletedConsumer(NpgsqlDataSource db, MessageOutbox outbox, IOptions<PricingOptions> pricing, TimeProvider clock) : IConsumer<JobCompleted>
{
    private sealed record EscrowRow(string ClientAccountId, string Kernel, decimal Amount, string Status);

    public async Task Consume(ConsumeContext<JobCompleted> context)
    {
        var done = context.Message;
        var ct = context.CancellationToken;
        var options = pricing.Value;
        var jobId = done.JobId.Value;

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var escrow = await connection.QuerySingleOrDefaultAsync<EscrowRow>(new CommandDefinition(
            "select client_account_id as ClientAccountId, kernel, amount, status from escrows where job_id = @jobId for update",
            new { jobId }, tx, cancellationToken: ct));
        if (escrow is null)
            throw new InvalidOperationException($"job {jobId} completed but was never escrowed; retrying until its JobSubmitted is processed");
        if (escrow.Status != "held")
            return;

        var cost = Math.Min(escrow.Amount, options.PriceOf(escrow.Kernel, done.Metrics.Gflop));
        var operatorShare = CreditLedger.Round(cost * (1 - options.NetworkFee));
        var fee = cost - operatorShare;
        var refund = escrow.Amount - cost;
        var minted = CreditLedger.Round(options.MintPerGflop * (decimal)done.Metrics.Gflop);
        var operatorAccount = done.OperatorAccountId.Value;

        await CreditLedger.EnsureAccountAsync(tx, operatorAccount, "operator", ct);
        await CreditLedger.PostAsync(tx, $"settle:{jobId}", jobId,
        [
            new Posting(CreditLedger.Escrow, "settle", -escrow.Amount),
            new Posting(escrow.ClientAccountId, "refund", refund),
            new Posting(operatorAccount, "payout", operatorShare),
            new Posting(CreditLedger.Fees, "fee", fee),
        ], ct);
        await CreditLedger.PostAsync(tx, $"mint:{jobId}", jobId,
        [
            new Posting(CreditLedger.Mint, "mint", -minted),
            new Posting(operatorAccount, "mint", minted),
        ], ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "update escrows set status = 'settled', cost = @cost, closed_at = now() where job_id = @jobId",
            new { cost, jobId }, tx, cancellationToken: ct));

        var now = clock.GetUtcNow();
        await outbox.EnqueueAsync(tx, new PaymentSettled
        {
            JobId = done.JobId,
            ClientAccountId = done.ClientAccountId,
            Cost = cost,
            Refunded = refund,
            OperatorAccountId = done.OperatorAccountId,
            OperatorPaid = operatorShare,
            OccurredAt = now,
        }, ct: ct);
        await outbox.EnqueueAsync(tx, new CreditsMinted { JobId = done.JobId, OperatorAccountId = done.OperatorAccountId, Amount = minted, OccurredAt = now }, ct: ct);
        await outbox.CommitAsync(tx, ct);
    }
}
