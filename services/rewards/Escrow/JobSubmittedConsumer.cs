using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>
/// Reserves a submitted job's estimated price, once per replica the client asked for, from the client's balance,
/// or rejects the job. The escrow row keeps the estimate (the network's own GFLOP figure, which the job's price
/// and mint follow) and is the idempotency record: a redelivered JobSubmitted finds it and changes nothing. An
/// estimate that is not a finite positive number counts as no work, and a price is at most
/// <see cref="CreditLedger.MaxAmount"/>, so no estimate can overflow the ledger.
/// </summary>
public sealed class JobSubmittedConsumer(NpgsqlDataSource db, MessageOutbox outbox, IOptions<PricingOptions> pricing, TimeProvider clock) : IConsumer<JobSubmitted>
{
    public async Task Consume(ConsumeContext<JobSubmitted> context)
    {
        var job = context.Message;
        var ct = context.CancellationToken;
        var price = pricing.Value.EscrowOf(job.Spec.Kernel, job.EstimatedGflop, job.Spec.Replicas);
        var client = job.ClientAccountId.Value;
        var gflop = (double)CreditLedger.GflopOf(job.EstimatedGflop);

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var fresh = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into escrows (job_id, client_account_id, kernel, amount, status, gflop)
            values (@JobId, @client, @Kernel, @price, 'held', @gflop) on conflict (job_id) do nothing
            """, new { JobId = job.JobId.Value, client, job.Spec.Kernel, price, gflop }, tx, cancellationToken: ct));
        if (fresh == 0)
            return;

        var balance = await connection.ExecuteScalarAsync<decimal?>(new CommandDefinition(
            "select balance from accounts where id = @client for update", new { client }, tx, cancellationToken: ct));
        var rejection = (balance, job.Spec.MaxPrice) switch
        {
            _ when price >= CreditLedger.MaxAmount => ("insufficient_credits", $"the job is estimated at {price} credits or more, beyond what any account may hold"),
            (_, { } max) when price > max => ("max_price_exceeded", $"the job is estimated at {price} credits, above its maxPrice of {max}"),
            (null, _) => ("insufficient_credits", $"the job costs {price} credits and the account has no credits"),
            ({ } b, _) when b < price => ("insufficient_credits", $"the job costs {price} credits and the account has {b}"),
            _ => default((string, string)?),
        };

        if (rejection is var (reason, detail))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update escrows set status = 'rejected', closed_at = now() where job_id = @JobId", new { JobId = job.JobId.Value }, tx, cancellationToken: ct));
            await outbox.EnqueueAsync(tx, new JobRejected { JobId = job.JobId, Reason = reason, Detail = detail, OccurredAt = clock.GetUtcNow() }, ct: ct);
        }
        else
        {
            await CreditLedger.PostAsync(tx, $"escrow:{job.JobId}", job.JobId.Value,
            [
                new Posting(client, "escrow", -price),
                new Posting(CreditLedger.Escrow, "escrow", price),
            ], ct);
            await outbox.EnqueueAsync(tx, new JobFunded { JobId = job.JobId, Escrowed = price, OccurredAt = clock.GetUtcNow() }, ct: ct);
        }
        await outbox.CommitAsync(tx, ct);
    }
}
