using System.Text.Json;
using Dapper;
using MassTransit;
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
            new { Outputs = JsonSerializer.Serialize(m.Outputs, JobStore.Json), now, JobId = m.JobId.Value }, tx, cancellationToken: ct));
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

public sealed class AttemptFailedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock) : IConsumer<AttemptFailed>
{
    public async Task Consume(ConsumeContext<AttemptFailed> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var client = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            """
            update jobs set status = 'failed', reason = @Reason, detail = @Detail, finished_at = now()
            where id = @JobId and attempt_id = @AttemptId and status in ('assigned', 'running')
            returning client_account_id
            """, new { m.Reason, m.Detail, JobId = m.JobId.Value, AttemptId = m.AttemptId.Value }, tx, cancellationToken: ct));
        if (client is null)
            return;

        var now = clock.GetUtcNow();
        await connection.ExecuteAsync(new CommandDefinition(
            "update attempts set status = 'failed', finished_at = @now, reason = @Reason, detail = @Detail where id = @AttemptId",
            new { now, m.Reason, m.Detail, AttemptId = m.AttemptId.Value }, tx, cancellationToken: ct));
        await outbox.EnqueueAsync(tx, new JobStatusChanged
        {
            JobId = m.JobId,
            Status = "failed",
            WorkerId = m.WorkerId,
            AttemptId = m.AttemptId,
            Reason = m.Reason,
            Detail = m.Detail,
            OccurredAt = now,
        }, ct: ct);
        await outbox.EnqueueAsync(tx, new JobFailed
        {
            JobId = m.JobId,
            ClientAccountId = AccountId.From(client),
            Reason = m.Reason,
            Detail = m.Detail,
            OccurredAt = now,
        }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        dispatcher.Poke();
    }
}
