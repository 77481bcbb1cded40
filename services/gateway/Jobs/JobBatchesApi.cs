using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Gateway.Auth;
using Platform.Gateway.Forwarding;
using Platform.Gateway.Limits;
using Platform.Gateway.Metrics;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;

namespace Platform.Gateway.Jobs;


/// <summary>
/// Job arrays: <c>POST /v1/jobs:batch</c> submits up to <see cref="JobSubmission.MaxBatchSize"/> jobs in one request,
/// each tracked, cancelled, verified and paid on its own (they are ordinary jobs to the rest of the network);
/// <c>/v1/batches/{id}</c> shows, cancels and streams the whole array.
/// </summary>
public static class JobBatchesApi
{
    public const string IdPrefix = "bat_";

    public static IEndpointRouteBuilder MapJobBatches(this IEndpointRouteBuilder app)
    {
        var limits = app.ServiceProvider.GetRequiredService<IOptions<RequestLimitOptions>>().Value;
        app.MapPost("/v1/jobs:batch", Submit).Accepts<SubmitJobBatchRequest>("application/json").WithTags("Jobs").RequireAuthorization(Roles.Client)
            .WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(limits.MaxBatchBodyBytes));
        var group = app.MapGroup("/v1/batches").WithTags("Jobs").RequireAuthorization(Roles.Client);
        group.MapGet("/{id}", Get);
        group.MapPost("/{id}/cancel", Cancel);
        group.MapGet("/{id}/events", JobBatchEventStream.Stream).Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        return app;
    }

    internal static async Task<Results<Accepted<JobBatchView>, ValidationProblem, ProblemHttpResult>> Submit(
        HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, StorageClient storage, TensorHeaders headers, IOptions<RequestLimitOptions> limits,
        TimeProvider clock, CancellationToken ct)
    {
        var (request, parseError) = await JsonBody.ReadAsync<SubmitJobBatchRequest>(http, ct);
        if (parseError is not null)
            return parseError;
        if (request!.Jobs is not { Count: > 0 and <= JobSubmission.MaxBatchSize } entries)
            return Problems.BadRequest("invalid-batch", "The batch is not valid",
                $"send {{\"jobs\": [job, ...]}} with 1 to {JobSubmission.MaxBatchSize} jobs (got {request.Jobs?.Count ?? 0})");
        var client = http.User.AccountIdOf();
        var idempotency = IdempotencyKeys.FromRequest(http, request, out var keyProblem);
        if (keyProblem is not null)
            return keyProblem;
        if (idempotency is not null && await ReplayAsync(http, db, client, idempotency, ct) is { } earlier)
            return earlier;

        var check = await JobSubmission.CheckAsync(entries, isArray: true, storage, headers, limits.Value.MaxOutputBytes, ct);
        if (check.Invalid is not null)
            return check.Invalid;
        if (check.Refused is not null)
            return check.Refused;

        var batchId = TypedId.NewValue(IdPrefix);
        var now = clock.GetUtcNow();
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            // As for one job: of concurrent requests with one key exactly one creates the batch.
            if (idempotency is not null && !await IdempotencyKeys.ClaimAsync(tx, client, idempotency, null, batchId, ct))
            {
                await tx.RollbackAsync(ct);
                return await ReplayAsync(http, db, client, idempotency, ct)
                    ?? throw new InvalidOperationException("an idempotency key was claimed but its row is gone");
            }
            await connection.ExecuteAsync(new CommandDefinition(
                "insert into job_batches (id, client_account_id, total, created_at) values (@batchId, @client, @total, @now)",
                new { batchId, client = client.Value, total = check.Jobs!.Count, now }, tx, cancellationToken: ct));
            await JobSubmission.WriteAsync(tx, outbox, client, batchId, check.Jobs, now, ct);
            await outbox.CommitAsync(tx, ct);
        }
        GatewayMetrics.JobsSubmitted(check.Jobs.Select(j => j.Spec.Kernel));
        var view = new JobBatchView(batchId, now, check.Jobs.Count, false,
            new Dictionary<string, int> { [JobStatuses.Pending] = check.Jobs.Count }, [.. check.Jobs.Select(j => j.Id.Value)]);
        return TypedResults.Accepted($"/v1/batches/{batchId}", view);
    }

    private static async Task<Results<Accepted<JobBatchView>, ValidationProblem, ProblemHttpResult>?> ReplayAsync(
        HttpContext http, NpgsqlDataSource db, AccountId client, IdempotencyKey key, CancellationToken ct)
    {
        var row = await IdempotencyKeys.FindAsync(db, client, key, ct);
        if (row is null)
            return null;
        if (row.RequestHash != key.RequestHash || row.BatchId is null)
            return IdempotencyKeys.Reused(key, row);
        http.Response.Headers["Idempotent-Replayed"] = "true";
        return TypedResults.Accepted($"/v1/batches/{row.BatchId}", await LoadAsync(db, row.BatchId, null, ct));
    }

    internal static async Task<Results<Ok<JobBatchView>, ProblemHttpResult>> Get(string id, HttpContext http, NpgsqlDataSource db, CancellationToken ct) =>
        await LoadAsync(db, id, OwnerFilter(http), ct) is { } view ? TypedResults.Ok(view) : NotFound(id);

    internal static async Task<Results<Accepted<JobBatchView>, ProblemHttpResult>> Cancel(
        string id, HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, TimeProvider clock, CancellationToken ct)
    {
        var view = await LoadAsync(db, id, OwnerFilter(http), ct);
        if (view is null)
            return NotFound(id);
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            // Every job not finished yet; the scheduler ignores a cancel for a job that finished meanwhile, as for one job.
            var open = (await connection.QueryAsync<BatchJobRow>(new CommandDefinition(
                "select id as Id, client_account_id as Owner from jobs where batch_id = @id and status_rank < 10", new { id }, tx, cancellationToken: ct))).ToList();
            var now = clock.GetUtcNow();
            await outbox.EnqueueManyAsync(tx, open.Select(j => new JobCancelRequested
            {
                JobId = JobId.From(j.Id),
                ClientAccountId = AccountId.From(j.Owner!),
                OccurredAt = now,
            }).ToList(), ct: ct);
            await outbox.CommitAsync(tx, ct);
        }
        return TypedResults.Accepted($"/v1/batches/{id}", view);
    }

    /// <summary>The batch as it is now, or null when there is none (or, with <paramref name="owner"/>, it is someone else's).</summary>
    internal static async Task<JobBatchView?> LoadAsync(NpgsqlDataSource db, string id, string? owner, CancellationToken ct)
    {
        if (!TypedId.IsValid(IdPrefix, id))
            return null;
        await using var connection = await db.OpenConnectionAsync(ct);
        var b = await connection.QuerySingleOrDefaultAsync<BatchRow>(new CommandDefinition(
            "select total as Total, created_at as CreatedAt from job_batches where id = @id and (@owner::text is null or client_account_id = @owner)",
            new { id, owner }, cancellationToken: ct));
        if (b is null)
            return null;
        var jobs = (await connection.QueryAsync<BatchJobRow>(new CommandDefinition(
            "select id as Id, status as Status from jobs where batch_id = @id order by batch_index", new { id }, cancellationToken: ct))).ToList();
        var counts = jobs.GroupBy(j => j.Status).OrderBy(g => JobStatuses.Rank(g.Key)).ToDictionary(g => g.Key, g => g.Count());
        return new JobBatchView(id, new DateTimeOffset(DateTime.SpecifyKind(b.CreatedAt, DateTimeKind.Utc)), b.Total,
            jobs.All(j => JobStatuses.IsTerminal(j.Status)), counts, [.. jobs.Select(j => j.Id)]);
    }

    // Another tenant's batch is reported exactly like a missing one; an admin sees every batch.
    internal static string? OwnerFilter(HttpContext http) => http.User.IsAdmin() ? null : http.User.AccountOf();

    internal static ProblemHttpResult NotFound(string id) => Problems.NotFound("batch-not-found", "Batch not found", $"no batch '{Platform.Contracts.Kernels.KernelCatalog.Clip(id)}' for this account");

    private sealed record BatchRow(int Total, DateTime CreatedAt);

    private sealed class BatchJobRow
    {
        public string Id { get; init; } = "";
        public string Status { get; init; } = "";
        public string? Owner { get; init; }
    }
}
