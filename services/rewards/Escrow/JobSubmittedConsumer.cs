using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Escrow;

/// <summary>
/// Reserves each submitted job's estimated price, once per replica the client asked for, from the client's balance,
/// or rejects the job. The escrow row keeps the estimate (the network's own GFLOP figure, which the job's price
/// and mint follow) and is the idempotency record: a redelivered JobSubmitted finds it and changes nothing. An
/// estimate that is not a finite positive number counts as no work, and a price is at most
/// <see cref="CreditLedger.MaxAmount"/>, so no estimate can overflow the ledger.
/// </summary>
/// <remarks>
/// Consumed in batches (<see cref="EscrowBatching"/>): a job array's thousands of JobSubmitted arrive together, and one
/// transaction that locks each client's balance row once for all of its jobs replaces one transaction per job queued
/// behind that row. A batch of one is the single-job case.
/// </remarks>
public sealed class JobSubmittedConsumer(NpgsqlDataSource db, MessageOutbox outbox, IOptions<PricingOptions> pricing, TimeProvider clock) : IConsumer<Batch<Bundle<JobSubmitted>>>
{
    public async Task Consume(ConsumeContext<Batch<Bundle<JobSubmitted>>> context)
    {
        var ct = context.CancellationToken;
        // A message redelivered into the same batch counts once.
        var jobs = context.Message.Items().DistinctBy(j => j.JobId).Select(job => new PricedJob(job,
            pricing.Value.EscrowOf(job.Spec.Kernel, job.EstimatedGflop, job.Spec.Replicas, job.OutputBytes), (double)CreditLedger.GflopOf(job.EstimatedGflop))).ToList();

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var fresh = (await connection.QueryAsync<string>(new CommandDefinition(
            """
            insert into escrows (job_id, client_account_id, kernel, amount, status, gflop, output_bytes)
            select e.job_id, e.client, e.kernel, e.amount, 'held', e.gflop, greatest(e.output_bytes, 0)
            from unnest(@ids, @clients, @kernels, @prices::numeric[], @gflops, @outputBytes) as e (job_id, client, kernel, amount, gflop, output_bytes)
            order by e.job_id on conflict (job_id) do nothing
            returning job_id
            """,
            new
            {
                ids = jobs.Select(j => j.Job.JobId.Value).ToArray(),
                clients = jobs.Select(j => j.Job.ClientAccountId.Value).ToArray(),
                kernels = jobs.Select(j => j.Job.Spec.Kernel).ToArray(),
                prices = jobs.Select(j => j.Price).ToArray(),
                gflops = jobs.Select(j => j.Gflop).ToArray(),
                outputBytes = jobs.Select(j => j.Job.OutputBytes).ToArray(),
            }, tx, cancellationToken: ct))).ToHashSet();
        if (fresh.Count == 0)
            return;

        var now = clock.GetUtcNow();
        var funded = new List<JobFunded>();
        var rejected = new List<JobRejected>();
        // Balance rows are locked in account order, as every ledger transaction locks them: no two batches wait on
        // each other in a cycle. Each client's jobs are funded in the order they came, from the balance left.
        foreach (var ofClient in jobs.Where(j => fresh.Contains(j.Job.JobId.Value)).GroupBy(j => j.Job.ClientAccountId.Value).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var balance = await connection.ExecuteScalarAsync<decimal?>(new CommandDefinition(
                "select balance from accounts where id = @client for update", new { client = ofClient.Key }, tx, cancellationToken: ct));
            foreach (var (job, price, _) in ofClient)
            {
                if (Rejection(price, balance, job.Spec.MaxPrice) is var (reason, detail))
                {
                    rejected.Add(new JobRejected { JobId = job.JobId, Reason = reason, Detail = detail, OccurredAt = now });
                    continue;
                }
                await CreditLedger.PostAsync(tx, $"escrow:{job.JobId}", job.JobId.Value,
                [
                    new Posting(ofClient.Key, "escrow", -price),
                    new Posting(CreditLedger.Escrow, "escrow", price),
                ], ct);
                balance -= price;
                funded.Add(new JobFunded { JobId = job.JobId, Escrowed = price, OccurredAt = now });
            }
        }
        if (rejected.Count > 0)
            await connection.ExecuteAsync(new CommandDefinition(
                "update escrows set status = 'rejected', closed_at = now() where job_id = any(@ids)",
                new { ids = rejected.Select(r => r.JobId.Value).ToArray() }, tx, cancellationToken: ct));
        await outbox.EnqueueManyAsync(tx, funded, ct: ct);
        await outbox.EnqueueManyAsync(tx, rejected, ct: ct);
        await outbox.CommitAsync(tx, ct);
    }

    private sealed record PricedJob(JobSubmitted Job, decimal Price, double Gflop);

    /// <summary>Why the job cannot be funded from <paramref name="balance"/> (null: the account has no row), or null when it can.</summary>
    private static (string Reason, string Detail)? Rejection(decimal price, decimal? balance, decimal? maxPrice) => (balance, maxPrice) switch
    {
        _ when price >= CreditLedger.MaxAmount => ("insufficient_credits", $"the job is estimated at {price} credits or more, beyond what any account may hold"),
        (_, { } max) when price > max => ("max_price_exceeded", $"the job is estimated at {price} credits, above its maxPrice of {max}"),
        (null, _) => ("insufficient_credits", $"the job costs {price} credits and the account has no credits"),
        ({ } b, _) when b < price => ("insufficient_credits", $"the job costs {price} credits and the account has {b}"),
        _ => null,
    };
}

/// <summary>How the escrow's two ends, JobSubmitted and JobCompleted, are batched.</summary>
public static class EscrowBatching
{
    /// <summary>Up to 100 messages a batch, two batches at once: one can commit while the next fills.</summary>
    public static readonly MessageBatching Default = new(100, MessageBatching.DefaultQuiet, 2);
}
