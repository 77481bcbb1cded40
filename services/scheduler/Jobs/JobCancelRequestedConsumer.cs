using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// Cancels a job at whatever stage it is: waiting for funding, queued, or held by a worker (which is told to
/// stop, and whose slot is free again at once), its results in and waiting for another replica's (the results are
/// never paid). A job that already finished is left as it is. A cancel sent as a request is answered after the
/// decision committed, so a client told "cancelled" can never see the job run on to payment.
/// </summary>
public sealed class JobCancelRequestedConsumer(NpgsqlDataSource db, MessageOutbox outbox, Dispatcher dispatcher, TimeProvider clock) : IConsumer<JobCancelRequested>
{
    private sealed record Held(string Status, string? WorkerId, string? AttemptId);

    public async Task Consume(ConsumeContext<JobCancelRequested> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // The request may overtake the job's own JobSubmitted: the row it leaves makes the late arrivals no-ops.
        await connection.ExecuteAsync(new CommandDefinition(
            "insert into jobs (id, client_account_id, status) values (@id, @client, 'pending') on conflict (id) do nothing",
            new { id = m.JobId.Value, client = m.ClientAccountId.Value }, tx, cancellationToken: ct));
        var job = await connection.QuerySingleAsync<Held>(new CommandDefinition(
            "select status, worker_id as WorkerId, attempt_id as AttemptId from jobs where id = @id for update",
            new { id = m.JobId.Value }, tx, cancellationToken: ct));
        if (job.Status is not ("pending" or "queued" or "assigned" or "running"))
        {
            await tx.CommitAsync(ct);
            await AnswerAsync(context, job.Status);
            return;
        }

        await connection.ExecuteAsync(new CommandDefinition(
            "update jobs set status = 'cancelled', reason = @reason, detail = @detail, finished_at = @now where id = @id",
            new { now, reason = JobReasons.CancelledByClient, detail = Detail(job), id = m.JobId.Value }, tx, cancellationToken: ct));
        WorkerId? worker = job.WorkerId is null ? null : WorkerId.From(job.WorkerId);
        AttemptId? attempt = job.AttemptId is null ? null : AttemptId.From(job.AttemptId);
        if (job.Status is "assigned" or "running" && worker is { } w && attempt is { } a)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update attempts set status = 'cancelled', finished_at = @now, reason = @reason, detail = @detail where id = @id",
                new { now, reason = JobReasons.CancelledByClient, detail = Detail(job), id = a.Value }, tx, cancellationToken: ct));
            await outbox.EnqueueAsync(tx, new CancelAttempt { JobId = m.JobId, AttemptId = a, WorkerId = w, OccurredAt = now },
                sendTo: NodeNames.ControlAddress(w), ct: ct);
        }
        await JobStatusEvents.EnqueueAsync(tx, outbox, new JobStatusChanged
        {
            JobId = m.JobId,
            Status = "cancelled",
            WorkerId = worker,
            AttemptId = attempt,
            Reason = JobReasons.CancelledByClient,
            Detail = Detail(job),
            OccurredAt = now,
        }, ct: ct);
        await outbox.EnqueueAsync(tx, new JobCancelled { JobId = m.JobId, ClientAccountId = m.ClientAccountId, Reason = JobReasons.CancelledByClient, OccurredAt = now }, ct: ct);
        await outbox.CommitAsync(tx, ct);
        dispatcher.Poke();
        await AnswerAsync(context, "cancelled");
    }

    private static async Task AnswerAsync(ConsumeContext<JobCancelRequested> context, string status)
    {
        if (context.ResponseAddress is not null)
            await context.RespondAsync(new JobCancelAnswered { JobId = context.Message.JobId, Cancelled = status == "cancelled", Status = status });
    }

    private static string Detail(Held job) => job.WorkerId is { } worker && job.Status is "assigned" or "running"
        ? $"The client cancelled the job while worker {worker} ran it; the worker was told to stop and the credits were refunded."
        : $"The client cancelled the job while it was {job.Status}; the credits were refunded.";
}
