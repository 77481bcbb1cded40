using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;

namespace Platform.Rewards.Escrow;

/// <summary>
/// The reconciler for escrow held for a job that ended: every job ends within the scheduler's deadline, so an escrow
/// still held <see cref="PricingOptions.EscrowCheckAfter"/> after its job was submitted means the job's ending never
/// reached rewards (its message and every replay lost). Rewards asks the scheduler to announce those endings again
/// (<see cref="JobOutcomesRequested"/>, through the outbox, 200 jobs a message) and its idempotent consumers settle or
/// refund exactly once; an escrow still held is asked about again after as long again. Rows are claimed with SKIP
/// LOCKED, so instances share the work.
/// </summary>
public sealed class EscrowReconciler(NpgsqlDataSource db, MessageOutbox outbox, IOptions<PricingOptions> options, DatabaseState database, TimeProvider clock,
    ILogger<EscrowReconciler> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Reconciling.RunAsync(options.Value.EscrowCheckInterval, clock, database, AskAsync, null, logger, stoppingToken);

    /// <summary>Asks about up to 200 escrows held too long; returns how many.</summary>
    public async Task<int> AskAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var after = options.Value.EscrowCheckAfter;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var jobs = (await connection.QueryAsync<string>(new CommandDefinition(
            """
            update escrows set checked_at = @now
            where job_id in (select job_id from escrows
                             where status = 'held' and created_at < @cutoff and (checked_at is null or checked_at < @cutoff)
                             order by created_at limit 200 for update skip locked)
            returning job_id
            """, new { now, cutoff = now - after }, tx, cancellationToken: ct))).ToList();
        if (jobs.Count > 0)
            await outbox.EnqueueAsync(tx, new JobOutcomesRequested { JobIds = [.. jobs.Select(JobId.From)], OccurredAt = now }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        if (jobs.Count > 0)
            logger.LogWarning("{Count} escrow(s) still held {After} after their jobs were submitted: asked the scheduler how the jobs ended", jobs.Count, JobReasons.Duration(after));
        return jobs.Count;
    }
}
