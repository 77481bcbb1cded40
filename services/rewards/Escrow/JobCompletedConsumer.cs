using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;
using Platform.Rewards.Minting;

namespace Platform.Rewards.Escrow;

/// <summary>
/// Settles completed jobs: the client pays for the replicas it asked for (never more than was escrowed), the
/// rest is refunded, every paid accepted attempt's operator gets its share (<see cref="Settlement"/>), and every
/// accepted attempt, spot checks included, is minted its reward plus any efficiency bonus out of the job's network
/// fee (<see cref="FeeFundedMint"/>). Price and mint follow the job's GFLOP as the network estimated it (kept on
/// the escrow row); what the node says it did is only a statistic. The escrow row moves from held to settled
/// under a row lock, and each effect has its own idempotency key (settle:job, mint:job:attempt), so a redelivered
/// or duplicated JobCompleted pays and mints nothing twice.
/// </summary>
/// <remarks>
/// <para>
/// Consumed in batches (<see cref="EscrowBatching"/>), one transaction per batch: every settlement moves its client's
/// and its operators' balance rows, and one transaction per job queued settlements behind each other on those
/// rows. A batch locks its escrow rows with one statement in job id order, writes all its settle and mint
/// transactions with <see cref="CreditLedger.PostManyAsync"/> (each balance row moved once, by the batch's sum) and
/// closes its escrows with one statement. A message redelivered into the same batch counts once.
/// </para>
/// <para>
/// A job whose escrow row does not exist yet (its JobCompleted overtook its JobSubmitted) must be retried, as a
/// single settlement threw for it. The batch settles the jobs that are there, commits, and then throws: the retry
/// (the endpoint's, which runs the whole batch again) finds the settled ones no longer held, so they change
/// nothing, and tries the missing ones until their JobSubmitted is processed. That is simpler than splitting them
/// off, and correct because settling is idempotent per job. The cost: the batch's other messages are acknowledged
/// only with it, and if the retries run out they go to the error queue with it, where replaying them is harmless.
/// </para>
/// <para>
/// The efficiency bonus: the network median is read once per batch, so every job of a batch, not only every
/// attempt of a job, is judged against the history recorded before the batch, and the batch's attempts join the
/// history together afterwards with one insert. A job in the same batch as another no longer sees that one's
/// attempts; the median over a window of hundreds of attempts barely moves for a batch of them.
/// </para>
/// </remarks>
public sealed class JobCompletedConsumer(NpgsqlDataSource db, MessageOutbox outbox, KnownAccounts accounts, IOptions<PricingOptions> pricing, TimeProvider clock)
    : IConsumer<Batch<Bundle<JobCompleted>>>
{
    private sealed record EscrowRow(string JobId, string ClientAccountId, string Kernel, decimal Amount, string Status, double? Gflop, long OutputBytes);

    private sealed record Settled(JobCompleted Done, IReadOnlyList<AcceptedAttempt> Accepted, double Gflop, Settlement Settlement, string ClientAccountId);

    public async Task Consume(ConsumeContext<Batch<Bundle<JobCompleted>>> context)
    {
        var ct = context.CancellationToken;
        var options = pricing.Value;
        // A message redelivered into the same batch counts once.
        var jobs = context.Message.Items().DistinctBy(j => j.JobId).ToList();

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // One statement locks the batch's escrow rows, in job id order as the escrow batch inserts them: two batches
        // sharing jobs never wait on each other in a cycle.
        var escrows = (await connection.QueryAsync<EscrowRow>(new CommandDefinition(
            """
            select job_id as JobId, client_account_id as ClientAccountId, kernel, amount, status, gflop, output_bytes as OutputBytes
            from escrows where job_id = any(@ids) order by job_id for update
            """,
            new { ids = jobs.Select(j => j.JobId.Value).ToArray() }, tx, cancellationToken: ct))).ToDictionary(e => e.JobId, StringComparer.Ordinal);
        var missing = jobs.Where(j => !escrows.ContainsKey(j.JobId.Value)).Select(j => j.JobId.Value).ToList();

        var settled = jobs.Where(j => escrows.TryGetValue(j.JobId.Value, out var e) && e.Status == "held").Select(done =>
        {
            var escrow = escrows[done.JobId.Value];
            var accepted = done.AcceptedAttempts();
            var gflop = escrow.Gflop ?? GflopCoveredBy(escrow, options);
            return new Settled(done, accepted, gflop, Settlement.Of(escrow.Amount, escrow.Kernel, gflop, escrow.OutputBytes, accepted, options), escrow.ClientAccountId);
        }).ToList();
        if (settled.Count > 0)
            await SettleAsync(tx, settled, options, ct);
        await outbox.CommitAsync(tx, ct);

        if (missing.Count > 0)
            throw new InvalidOperationException(
                $"job(s) {string.Join(", ", missing)} completed but were never escrowed; retrying until their JobSubmitted is processed (the rest of the batch is settled)");
    }

    private async Task SettleAsync(NpgsqlTransaction tx, IReadOnlyList<Settled> settled, PricingOptions options, CancellationToken ct)
    {
        // Once per batch, in account order: KnownAccounts may be asked once per account in a transaction.
        foreach (var operatorAccount in settled.SelectMany(s => s.Accepted).Select(a => a.OperatorAccountId.Value).Distinct().Order(StringComparer.Ordinal))
            await accounts.EnsureAsync(tx, operatorAccount, "operator", ct);

        // Every attempt of the batch is judged against the same history, recorded before the batch's attempts join it.
        var median = await EfficiencyBonus.NetworkMedianAsync(tx, options.EfficiencyWindow, ct);
        var now = clock.GetUtcNow();
        var ledger = new List<(string IdempotencyKey, string? JobId, IReadOnlyList<Posting> Postings)>();
        var energy = new List<(string JobId, AcceptedAttempt Attempt, double JoulesPerGflop)>();
        var mints = new List<(string IdempotencyKey, CreditsMinted Message)>();
        foreach (var (done, accepted, gflop, settlement, client) in settled)
        {
            var jobId = done.JobId.Value;
            ledger.Add(($"settle:{jobId}", jobId, settlement.Postings(client)));
            foreach (var grant in FeeFundedMint.Of(accepted, gflop, settlement.Fee, median, options))
            {
                var attempt = grant.Attempt;
                if (grant.JoulesPerGflop is { } recorded)
                    energy.Add((jobId, attempt, recorded));
                // Nothing to mint (a tiny job's reward rounds to zero, or the mint was withheld): no ledger transaction
                // at all, rather than one whose postings are all zero.
                if (grant.Minted + grant.Bonus == 0m)
                    continue;
                var operatorAccount = attempt.OperatorAccountId.Value;
                var worker = attempt.WorkerId.Value;
                var key = $"mint:{jobId}:{attempt.AttemptId}";
                // From the fee the settlement put in sys:fees: the network gives up part of its fee, it prints nothing.
                ledger.Add((key, jobId,
                [
                    new Posting(CreditLedger.Fees, "mint", -grant.Minted, worker),
                    new Posting(operatorAccount, "mint", grant.Minted, worker),
                    new Posting(CreditLedger.Fees, "efficiency-bonus", -grant.Bonus, worker),
                    new Posting(operatorAccount, "efficiency-bonus", grant.Bonus, worker),
                ]));
                mints.Add((key, new CreditsMinted { JobId = done.JobId, OperatorAccountId = attempt.OperatorAccountId, Amount = grant.Minted + grant.Bonus, OccurredAt = now }));
            }
        }
        await EfficiencyBonus.RecordManyAsync(tx, energy, ct);
        var applied = await CreditLedger.PostManyAsync(tx, ledger, ct);

        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            update escrows e set status = 'settled', cost = s.cost, closed_at = now()
            from unnest(@ids::text[], @costs::numeric[]) as s(job_id, cost) where e.job_id = s.job_id
            """,
            new { ids = settled.Select(s => s.Done.JobId.Value).ToArray(), costs = settled.Select(s => s.Settlement.Cost).ToArray() },
            tx, cancellationToken: ct));

        // A mint already applied (its key taken) is not announced again. PaymentSettled names one operator (the
        // first paid attempt's, else the delivered attempt's) and what all operators were paid together; the
        // ledger has each payout.
        var messages = new List<object>();
        messages.AddRange(mints.Where(m => applied.ContainsKey(m.IdempotencyKey)).Select(m => m.Message));
        messages.AddRange(settled.Select(s => new PaymentSettled
        {
            JobId = s.Done.JobId,
            ClientAccountId = s.Done.ClientAccountId,
            Cost = s.Settlement.Cost,
            Refunded = s.Settlement.Refund,
            OperatorAccountId = s.Settlement.Payouts.Count > 0 ? s.Settlement.Payouts[0].Attempt.OperatorAccountId : s.Done.OperatorAccountId,
            OperatorPaid = s.Settlement.Payouts.Sum(p => p.Amount),
            OccurredAt = now,
        }));
        await outbox.EnqueueManyAsync(tx, messages, ct: ct);
    }

    /// <summary>
    /// For a job escrowed before the estimate was kept: the GFLOP its escrow pays for at the kernel's rate. That is
    /// the estimate times the replicas, more than the estimate for a replicated job, but the price is capped at the
    /// escrow and the mint at the fee whatever the figure, and it is still the network's figure, not a node's.
    /// </summary>
    private static double GflopCoveredBy(EscrowRow escrow, PricingOptions options)
    {
        var rate = options.PricePerGflop.TryGetValue(escrow.Kernel, out var p) ? p : options.DefaultPricePerGflop;
        return rate > 0 ? (double)(escrow.Amount / rate) : 0;
    }
}
