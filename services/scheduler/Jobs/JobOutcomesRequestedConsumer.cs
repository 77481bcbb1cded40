using System.Text.Json;
using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Announces again how jobs ended, for rewards' escrow reconciler: a completed job's JobCompleted exactly as it was
/// first published (kept in jobs.completion), a failed job's JobFailed and a cancelled job's JobCancelled from its
/// reason. Re-publishing changes nothing here, and every consumer of those messages is idempotent, so a redelivered
/// request, or a request about a job whose ending did arrive, costs a message and moves nothing.
/// </summary>
public sealed class JobOutcomesRequestedConsumer(NpgsqlDataSource db, MessageOutbox outbox, TimeProvider clock, ILogger<JobOutcomesRequestedConsumer> logger)
    : IConsumer<JobOutcomesRequested>
{
    private sealed record Ended(string Id, string Status, string ClientAccountId, string? Reason, string? Detail, string? Completion);

    public async Task Consume(ConsumeContext<JobOutcomesRequested> context)
    {
        var ct = context.CancellationToken;
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var ended = await connection.QueryAsync<Ended>(new CommandDefinition(
            """
            select id as Id, status as Status, client_account_id as ClientAccountId, reason as Reason, detail as Detail, completion as Completion
            from jobs where id = any(@ids) and status in ('completed', 'failed', 'cancelled') and client_account_id is not null
            """, new { ids = context.Message.JobIds.Select(j => j.Value).ToArray() }, tx, cancellationToken: ct));
        var announced = 0;
        foreach (var job in ended)
        {
            var jobId = JobId.From(job.Id);
            var client = AccountId.From(job.ClientAccountId);
            switch (job.Status)
            {
                case "completed" when job.Completion is not null:
                    await outbox.EnqueueAsync(tx, JsonSerializer.Deserialize<JobCompleted>(job.Completion, PlatformJson.Options)!, ct: ct);
                    break;
                case "completed":
                    logger.LogWarning("Job {JobId} completed before its completion was kept: it cannot be announced again", job.Id);
                    continue;
                case "failed":
                    await outbox.EnqueueAsync(tx, new JobFailed { JobId = jobId, ClientAccountId = client, Reason = job.Reason ?? JobReasons.Unknown, Detail = job.Detail ?? "", OccurredAt = now }, ct: ct);
                    break;
                default:
                    await outbox.EnqueueAsync(tx, new JobCancelled { JobId = jobId, ClientAccountId = client, Reason = job.Reason ?? JobReasons.CancelledByClient, OccurredAt = now }, ct: ct);
                    break;
            }
            announced++;
        }
        await outbox.CommitAsync(tx, ct);
        if (announced > 0)
            logger.LogWarning("Announced the ending of {Count} job(s) again: rewards still held their escrow", announced);
    }
}
