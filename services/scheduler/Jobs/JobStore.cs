using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Scheduler.Jobs;

/// <summary>Job state transitions shared by the consumers. Each one is a conditional UPDATE, so a redelivered
/// or reordered message finds the job already past that state and changes nothing.</summary>
public static class JobStore
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A job is queued once it has both its spec (JobSubmitted) and its funding (JobFunded).</summary>
    public static async Task<bool> QueueIfReadyAsync(NpgsqlTransaction tx, MessageOutbox outbox, JobId jobId, DateTimeOffset now, CancellationToken ct)
    {
        var queued = await tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            update jobs set status = 'queued', queued_at = @now
            where id = @jobId and status = 'pending' and funded and spec is not null
            """, new { jobId = jobId.Value, now }, tx, cancellationToken: ct));
        if (queued == 0)
            return false;
        await outbox.EnqueueAsync(tx, new JobStatusChanged { JobId = jobId, Status = "queued", OccurredAt = now }, ct: ct);
        return true;
    }
}
