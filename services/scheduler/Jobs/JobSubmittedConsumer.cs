using System.Text.Json;
using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Hosting.Tracing;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Records submitted jobs and queues those already funded. Consumed in batches (<see cref="IntakeBatching"/>): a job
/// array's JobSubmitted and JobFunded arrive in thousands, and each batch is one upsert and one queueing statement
/// whatever its size; a batch of one is the single-job case.
/// </summary>
public sealed class JobSubmittedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock)
    : IConsumer<Batch<Bundle<JobSubmitted>>>
{
    public async Task Consume(ConsumeContext<Batch<Bundle<JobSubmitted>>> context)
    {
        var ct = context.CancellationToken;
        // A message redelivered into the same batch counts once. Rows are written in id order, as JobFundedConsumer
        // writes them: two batches holding the same jobs never wait on each other in a cycle.
        var jobs = context.Message.Items().DistinctBy(j => j.JobId).ToList();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, client_account_id, kernel, spec, estimated_gflop, status, priority, policy, region, device, min_memory_mb, input_bytes,
                              results_needed, spot_check, trace_parent)
            select j.id, j.client, j.kernel, j.spec::jsonb, j.gflop, 'pending', j.priority, j.policy, j.region, j.device, j.memory, j.input_bytes,
                   j.results_needed, false, j.trace_parent
            from unnest(@ids, @clients, @kernels, @specs, @gflops, @priorities, @policies, @regions, @devices, @memories, @inputBytes, @resultsNeeded,
                        @traceParents)
                 as j (id, client, kernel, spec, gflop, priority, policy, region, device, memory, input_bytes, results_needed, trace_parent)
            order by j.id
            on conflict (id) do update set client_account_id = excluded.client_account_id, kernel = excluded.kernel,
                spec = excluded.spec, estimated_gflop = excluded.estimated_gflop, priority = excluded.priority, policy = excluded.policy,
                region = excluded.region, device = excluded.device, min_memory_mb = excluded.min_memory_mb, input_bytes = excluded.input_bytes,
                results_needed = excluded.results_needed, spot_check = excluded.spot_check, trace_parent = excluded.trace_parent
            where jobs.spec is null
            """,
            new
            {
                ids = jobs.Select(j => j.JobId.Value).ToArray(),
                clients = jobs.Select(j => j.ClientAccountId.Value).ToArray(),
                kernels = jobs.Select(j => j.Spec.Kernel).ToArray(),
                specs = jobs.Select(j => JsonSerializer.Serialize(j.Spec, PlatformJson.Options)).ToArray(),
                gflops = jobs.Select(j => j.EstimatedGflop).ToArray(),
                priorities = jobs.Select(j => j.Spec.Priority).ToArray(),
                policies = jobs.Select(j => j.Spec.Policy).ToArray(),
                regions = jobs.Select(j => j.Spec.Requirements.Region).ToArray(),
                devices = jobs.Select(j => j.Spec.Requirements.Device).ToArray(),
                memories = jobs.Select(j => j.Spec.Requirements.MinMemoryMb).ToArray(),
                inputBytes = jobs.Select(j => j.InputBytes).ToArray(),
                // Whether a single replica is spot-checked is decided when its result comes in, from its worker's trust.
                resultsNeeded = jobs.Select(j => Math.Max(1, j.Spec.Replicas)).ToArray(),
                // This consumer's span of each job (JobTraceFilter), which the dispatch pass continues.
                traceParents = jobs.Select(j => JobTraces.TraceParentOf(j)).ToArray(),
            }, tx, cancellationToken: ct));
        var queued = await JobStore.QueueIfReadyAsync(tx, outbox, [.. jobs.Select(j => j.JobId)], clock.GetUtcNow(), ct);
        await outbox.CommitAsync(tx, ct);
        dispatcher.Queued(queued);
    }
}

/// <summary>Marks jobs funded and queues those already recorded; in batches, as <see cref="JobSubmittedConsumer"/>.</summary>
public sealed class JobFundedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock) : IConsumer<Batch<Bundle<JobFunded>>>
{
    public async Task Consume(ConsumeContext<Batch<Bundle<JobFunded>>> context)
    {
        var ct = context.CancellationToken;
        var ids = context.Message.Items().Select(m => m.JobId).Distinct().ToList();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, funded, status) select id, true, 'pending' from unnest(@ids) as id order by id
            on conflict (id) do update set funded = true
            """, new { ids = ids.Select(i => i.Value).ToArray() }, tx, cancellationToken: ct));
        var queued = await JobStore.QueueIfReadyAsync(tx, outbox, ids, clock.GetUtcNow(), ct);
        await outbox.CommitAsync(tx, ct);
        dispatcher.Queued(queued);
    }
}

/// <summary>How job intake (JobSubmitted, JobFunded) is batched.</summary>
public static class IntakeBatching
{
    /// <summary>Up to 100 messages a batch, two batches at once: one can commit while the next fills.</summary>
    public static readonly MessageBatching Default = new(100, MessageBatching.DefaultQuiet, 2);
}

public sealed class JobRejectedConsumer(NpgsqlDataSource db) : IConsumer<JobRejected>
{
    public async Task Consume(ConsumeContext<JobRejected> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, status, reason, detail, finished_at) values (@JobId, 'rejected', @Reason, @Detail, now())
            on conflict (id) do update set status = 'rejected', reason = excluded.reason, detail = excluded.detail, finished_at = now()
            where jobs.status = 'pending'
            """, new { JobId = m.JobId.Value, m.Reason, m.Detail }, cancellationToken: context.CancellationToken));
    }
}
