using System.Text.Json;
using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

public sealed class JobSubmittedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock)
    : IConsumer<JobSubmitted>
{
    public async Task Consume(ConsumeContext<JobSubmitted> context)
    {
        var job = context.Message;
        var ct = context.CancellationToken;
        var replicas = Math.Max(1, job.Spec.Replicas);
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, client_account_id, kernel, spec, estimated_gflop, status, priority, policy, region, device, min_memory_mb, input_bytes,
                              results_needed, spot_check)
            values (@JobId, @Client, @Kernel, @Spec::jsonb, @EstimatedGflop, 'pending', @Priority, @Policy, @Region, @Device, @MinMemoryMb, @InputBytes,
                    @ResultsNeeded, @SpotCheck)
            on conflict (id) do update set client_account_id = excluded.client_account_id, kernel = excluded.kernel,
                spec = excluded.spec, estimated_gflop = excluded.estimated_gflop, priority = excluded.priority, policy = excluded.policy,
                region = excluded.region, device = excluded.device, min_memory_mb = excluded.min_memory_mb, input_bytes = excluded.input_bytes,
                results_needed = excluded.results_needed, spot_check = excluded.spot_check
            where jobs.spec is null
            """,
            new
            {
                JobId = job.JobId.Value,
                Client = job.ClientAccountId.Value,
                job.Spec.Kernel,
                Spec = JsonSerializer.Serialize(job.Spec, PlatformJson.Options),
                job.EstimatedGflop,
                job.Spec.Priority,
                job.Spec.Policy,
                job.Spec.Requirements.Region,
                job.Spec.Requirements.Device,
                job.Spec.Requirements.MinMemoryMb,
                job.InputBytes,
                // Whether a single replica is spot-checked is decided when its result comes in, from its worker's trust.
                ResultsNeeded = replicas,
                SpotCheck = false,
            }, tx, cancellationToken: ct));
        var queued = await JobStore.QueueIfReadyAsync(tx, outbox, job.JobId, clock.GetUtcNow(), ct);
        await outbox.CommitAsync(tx, ct);
        if (queued)
            dispatcher.Poke();
    }
}

public sealed class JobFundedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock) : IConsumer<JobFunded>
{
    public async Task Consume(ConsumeContext<JobFunded> context)
    {
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, funded, status) values (@JobId, true, 'pending')
            on conflict (id) do update set funded = true
            """, new { JobId = context.Message.JobId.Value }, tx, cancellationToken: ct));
        var queued = await JobStore.QueueIfReadyAsync(tx, outbox, context.Message.JobId, clock.GetUtcNow(), ct);
        await outbox.CommitAsync(tx, ct);
        if (queued)
            dispatcher.Poke();
    }
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
