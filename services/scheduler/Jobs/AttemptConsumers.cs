using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Results are accepted only from the attempt that currently holds the job (the attempt id is the fencing
/// token); anything else is a stale or duplicated message and is dropped.
/// </summary>
public sealed class AttemptStartedConsumer(NpgsqlDataSource db, MessageOutbox outbox, TimeProvider clock) : IConsumer<AttemptStarted>
{
    public async Task Consume(ConsumeContext<AttemptStarted> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var started = await connection.ExecuteAsync(new CommandDefinition(
            "update jobs set status = 'running' where id = @JobId and attempt_id = @AttemptId and status = 'assigned'",
            new { JobId = m.JobId.Value, AttemptId = m.AttemptId.Value }, tx, cancellationToken: ct));
        if (started == 1)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update attempts set status = 'running' where id = @AttemptId", new { AttemptId = m.AttemptId.Value }, tx, cancellationToken: ct));
            await outbox.EnqueueAsync(tx, new JobStatusChanged
            {
                JobId = m.JobId,
                Status = "running",
                WorkerId = m.WorkerId,
                AttemptId = m.AttemptId,
                OccurredAt = clock.GetUtcNow(),
            }, ct: ct);
        }
        await outbox.CommitAsync(tx, ct);
    }
}

public sealed class AttemptCompletedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock) : IConsumer<AttemptCompleted>
{
    private sealed record Holder(string ClientAccountId, string Kernel, string OperatorAccountId);

    public async Task Consume(ConsumeContext<AttemptCompleted> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var holder = await connection.QuerySingleOrDefaultAsync<Holder>(new CommandDefinition(
            """
            select j.client_account_id as ClientAccountId, j.kernel, w.operator_account_id as OperatorAccountId
            from jobs j join workers w on w.id = j.worker_id
            where j.id = @JobId and j.attempt_id = @AttemptId and j.worker_id = @WorkerId and j.status in ('assigned', 'running')
            for update of j
            """, new { JobId = m.JobId.Value, AttemptId = m.AttemptId.Value, WorkerId = m.WorkerId.Value }, tx, cancellationToken: ct));
        if (holder is null)
            return;

        var now = clock.GetUtcNow();
        await connection.ExecuteAsync(new CommandDefinition(
            "update jobs set status = 'completed', outputs = @Outputs::jsonb, finished_at = @now where id = @JobId",
            new { Outputs = JsonSerializer.Serialize(m.Outputs, PlatformJson.Options), now, JobId = m.JobId.Value }, tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(
            "update attempts set status = 'accepted', finished_at = @now where id = @AttemptId",
            new { now, AttemptId = m.AttemptId.Value }, tx, cancellationToken: ct));
        await outbox.EnqueueAsync(tx, new JobStatusChanged
        {
            JobId = m.JobId,
            Status = "completed",
            WorkerId = m.WorkerId,
            AttemptId = m.AttemptId,
            OccurredAt = now,
        }, ct: ct);
        await outbox.EnqueueAsync(tx, new JobCompleted
        {
            JobId = m.JobId,
            ClientAccountId = AccountId.From(holder.ClientAccountId),
            AttemptId = m.AttemptId,
            WorkerId = m.WorkerId,
            OperatorAccountId = AccountId.From(holder.OperatorAccountId),
            Kernel = holder.Kernel,
            Outputs = m.Outputs,
            Metrics = m.Metrics,
            Signature = m.Signature,
            OccurredAt = now,
        }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        dispatcher.Poke();
    }
}

/// <summary>
/// A failure caused by the job's own inputs fails the job at once (another worker would fail the same way);
/// any other failure gives the job to another worker until it has had its attempts.
/// </summary>
public sealed class AttemptFailedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, IOptions<SchedulerOptions> options, TimeProvider clock)
    : IConsumer<AttemptFailed>
{
    public static readonly IReadOnlySet<string> PermanentReasons = new HashSet<string> { "input_invalid", "input_missing", "input_corrupt" };

    public async Task Consume(ConsumeContext<AttemptFailed> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var changed = await JobStore.EndAttemptAsync(tx, outbox, m.JobId, m.AttemptId, m.Reason, m.Detail,
            retry: !PermanentReasons.Contains(m.Reason), options.Value.MaxAttempts, now, ct);
        await outbox.CommitAsync(tx, ct);
        if (changed)
            dispatcher.Poke();
    }
}
