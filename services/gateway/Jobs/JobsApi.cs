using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Gateway.Auth;
using Platform.Gateway.Forwarding;
using Platform.Gateway.Limits;
using Platform.Gateway.Metrics;
using Platform.Hosting.Http;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Hosting.Tracing;

namespace Platform.Gateway.Jobs;

public static partial class JobsApi
{
    public static IBusRegistrationConfigurator AddJobs(this IBusRegistrationConfigurator bus, MessageBatching? batching = null)
    {
        // The batch options raise the endpoint's prefetch and concurrency to fit them, for the other view messages on
        // the same queue too.
        bus.AddConsumer<JobViewConsumer>(c => c.Options<BatchOptions>((batching ?? JobViewConsumer.Batching).Configure));
        bus.AddRequestClient<JobCancelRequested>(RequestTimeout.After(s: 15));
        return bus;
    }

    public static RouteGroupBuilder MapJobs(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/jobs").WithTags("Jobs").RequireAuthorization(Roles.Client);
        group.MapPost("/", Submit).Accepts<SubmitJobRequest>("application/json");
        group.MapGet("/{id}", Get);
        group.MapGet("/", List);
        group.MapPost("/{id}/cancel", Cancel);
        group.MapGet("/{id}/events", JobEventStream.Stream).Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        return group;
    }

    internal static async Task<Results<Accepted<JobView>, ValidationProblem, ProblemHttpResult>> Submit(
        HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, StorageClient storage, TensorHeaders headers, SubmissionGroupCommit groupCommit,
        IOptions<RequestLimitOptions> limits, TimeProvider clock, CancellationToken ct)
    {
        var (request, parseError) = await JsonBody.ReadAsync<SubmitJobRequest>(http, ct);
        if (parseError is not null)
            return parseError;
        var client = http.User.AccountIdOf();
        var idempotency = IdempotencyKeys.FromRequest(http, request!, out var keyProblem);
        if (keyProblem is not null)
            return keyProblem;
        if (idempotency is not null && await IdempotencyKeys.ReplayAsync(http, db, client, idempotency, ct) is { } earlier)
            return earlier;

        // A single job is a batch of one: the same checks and the same statements as POST /v1/jobs:batch.
        var check = await JobSubmission.CheckAsync([request], isArray: false, storage, headers, limits.Value.MaxOutputBytes, ct);
        if (check.Invalid is not null)
            return check.Invalid;
        if (check.Refused is not null)
            return check.Refused;
        var job = check.Jobs![0];
        var jobId = job.Id;
        // The request's span names its job: where `./platform trace JOB_ID` finds the job's trace.
        Activity.Current?.SetTag(PlatformTracing.JobIdTag, jobId.Value);
        if (idempotency is null)
        {
            // Written with the other single submissions waiting, in one transaction.
            var created = await groupCommit.WriteAsync(client, job);
            return TypedResults.Accepted($"/v1/jobs/{jobId}", JobViewStore.Submitted(jobId, job.Spec, created));
        }

        var now = JobSubmission.CreationTime(clock);
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            // Claimed in the job's own transaction: of concurrent requests with one key exactly one creates the
            // job; the others wait for it to commit and then answer with its job.
            if (!await IdempotencyKeys.ClaimAsync(tx, client, idempotency, jobId.Value, null, ct))
            {
                await tx.RollbackAsync(ct);
                return await IdempotencyKeys.ReplayAsync(http, db, client, idempotency, ct)
                    ?? throw new InvalidOperationException("an idempotency key was claimed but its row is gone");
            }
            await JobSubmission.WriteAsync(tx, outbox, client, null, [job], now, ct);
            await outbox.CommitAsync(tx, ct);
        }
        GatewayMetrics.JobsSubmitted([job.Spec.Kernel]);

        return TypedResults.Accepted($"/v1/jobs/{jobId}", JobViewStore.Submitted(jobId, job.Spec, now));
    }

    internal static (JobSpec? Spec, string? KernelError) Validate(SubmitJobRequest request, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrWhiteSpace(request.Kernel))
            errors["kernel"] = [$"kernel is required; available kernels: {string.Join(", ", KernelCatalog.Names)}"];
        var inputs = new Dictionary<string, Cid>();
        if (request.Inputs is null || request.Inputs.Count == 0)
            errors["inputs"] = ["inputs is required: a map of input name to blob CID"];
        else
        {
            foreach (var (name, value) in request.Inputs)
            {
                if (Cid.TryParse(value, out var cid))
                    inputs[name] = cid;
                else
                    errors[$"inputs.{KernelCatalog.Clip(name)}"] = [$"'{KernelCatalog.Clip(value)}' is not a CIDv1 raw sha2-256 base32 CID (they start with 'bafkrei')"];
            }
        }
        var parameters = new Dictionary<string, string>();
        foreach (var (name, value) in request.Params ?? [])
        {
            switch (value.ValueKind)
            {
                case JsonValueKind.String:
                    parameters[name] = value.GetString()!;
                    break;
                case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                    parameters[name] = value.GetRawText();
                    break;
                default:
                    errors[$"params.{name}"] = ["parameters are strings, numbers or booleans"];
                    break;
            }
        }
        if (request.Replicas is < 1 or > 5)
            errors["replicas"] = ["replicas must be between 1 and 5"];
        if (request.MaxPrice is < 0)
            errors["maxPrice"] = ["maxPrice must not be negative"];
        var requirements = request.Requirements ?? new RequirementsRequest(null, null, null);
        if (requirements.Device is not (null or "any" or "cpu" or "gpu"))
            errors["requirements.device"] = ["device must be any, cpu or gpu"];
        if (requirements.MinMemoryMb is < 0)
            errors["requirements.minMemoryMb"] = ["minMemoryMb must not be negative"];
        if (requirements.Region is { } region && !RegionPattern().IsMatch(region))
            errors["requirements.region"] = ["region is lower-case letters, digits and dashes, at most 32"];
        if (request.Priority is < -10 or > 10)
            errors["priority"] = ["priority must be between -10 and 10"];
        if (request.Policy is not (null or "latency" or "energy" or "cost"))
            errors["policy"] = ["policy must be latency, energy or cost"];
        if (errors.Count > 0)
            return (null, null);

        var spec = new JobSpec
        {
            Kernel = request.Kernel!,
            Inputs = inputs,
            Params = parameters,
            Replicas = request.Replicas ?? 1,
            MaxPrice = request.MaxPrice,
            Requirements = new JobRequirements
            {
                Device = requirements.Device ?? "any",
                MinMemoryMb = requirements.MinMemoryMb ?? 0,
                Region = requirements.Region,
            },
        };
        return (spec, KernelCatalog.CheckNames(spec.Kernel, spec.Inputs.Keys.ToList(), spec.Params));
    }

    internal static async Task<Results<Ok<JobView>, ProblemHttpResult>> Get(string id, HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var view = JobId.TryParse(id, null, out _) ? await JobViewStore.LoadAsync(db, id, ct, http.User.IsAdmin() ? null : http.User.AccountOf()) : null;
        // Another tenant's job is reported exactly like a missing one.
        return view is null ? Problems.NotFound("job-not-found", "Job not found", $"no job '{id}' for this account") : TypedResults.Ok(view);
    }

    /// <summary>
    /// Cancels a job and says what happened: the scheduler (which alone knows whether a result was accepted first; this
    /// gateway's view can lag it) is asked and answers after its decision committed, so 200 means cancelled for good
    /// (the escrow is refunded, and no result of the job will be paid) and 409 means it had finished. No answer within
    /// the request's time is a 503: the request expires unread, and trying again is safe.
    /// </summary>
    internal static async Task<Results<Ok<JobView>, ProblemHttpResult>> Cancel(
        string id, HttpContext http, NpgsqlDataSource db, IRequestClient<JobCancelRequested> scheduler, TimeProvider clock, CancellationToken ct)
    {
        var view = JobId.TryParse(id, null, out _) ? await JobViewStore.LoadAsync(db, id, ct, http.User.IsAdmin() ? null : http.User.AccountOf()) : null;
        if (view is null)
            return Problems.NotFound("job-not-found", "Job not found", $"no job '{id}' for this account");
        if (view.Status == "cancelled")
            return TypedResults.Ok(view);
        if (JobStatuses.IsTerminal(view.Status))
            return NotCancelled(id, view.Status);

        string owner;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            owner = (await connection.ExecuteScalarAsync<string>(new CommandDefinition(
                "select client_account_id from jobs where id = @id", new { id }, cancellationToken: ct)))!;
        }
        JobCancelAnswered answer;
        try
        {
            answer = (await scheduler.GetResponse<JobCancelAnswered>(
                new JobCancelRequested { JobId = JobId.From(id), ClientAccountId = AccountId.From(owner), OccurredAt = clock.GetUtcNow() }, ct)).Message;
        }
        catch (Exception ex) when (ex is RequestTimeoutException or RequestFaultException)
        {
            http.Response.Headers.RetryAfter = "5";
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Scheduler unavailable",
                $"the scheduler did not answer whether job {id} could be cancelled; nothing was cancelled, try again");
        }
        if (!answer.Cancelled)
            return NotCancelled(id, answer.Status);
        // The read model follows the scheduler's event in a moment; the answer is already final.
        var after = await JobViewStore.LoadAsync(db, id, ct) ?? view;
        return TypedResults.Ok(after.Status == "cancelled" ? after : after with { Status = "cancelled" });
    }

    private static ProblemHttpResult NotCancelled(string id, string status) =>
        Problems.Create(StatusCodes.Status409Conflict, "job-finished", "Job already finished", $"job {id} is {status} and cannot be cancelled");

    internal static async Task<Results<Ok<JobList>, ProblemHttpResult>> List(HttpContext http, NpgsqlDataSource db, string? status, int? limit, string? cursor, CancellationToken ct)
    {
        if (status is not null && !JobStatuses.All.Contains(status))
            return Problems.BadRequest("invalid-query", "Unknown status", $"status must be one of {string.Join(", ", JobStatuses.All)}");
        if (limit is < 1 or > 200)
            return Problems.BadRequest("invalid-query", "Invalid limit", "limit must be between 1 and 200");
        (DateTimeOffset At, string Id)? after = null;
        if (cursor is not null)
        {
            after = Cursor.Decode(cursor);
            if (after is null)
                return Problems.BadRequest("invalid-query", "Invalid cursor", "cursor must be a value returned as nextCursor");
        }
        var page = await JobViewStore.ListAsync(db, http.User.AccountOf(), status, limit ?? 50, after, ct);
        var next = page.Count == (limit ?? 50) ? Cursor.Encode(page[^1].CreatedAt, page[^1].Id) : null;
        return TypedResults.Ok(new JobList(page, next));
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[a-z0-9-]{1,32}$")]
    private static partial System.Text.RegularExpressions.Regex RegionPattern();

    private static class Cursor
    {
        public static string Encode(DateTimeOffset at, string id) =>
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{at.UtcTicks.ToString(CultureInfo.InvariantCulture)}:{id}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

        public static (DateTimeOffset, string)? Decode(string cursor)
        {
            try
            {
                var b64 = cursor.Replace('-', '+').Replace('_', '/');
                b64 = b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=');
                var parts = Encoding.UTF8.GetString(Convert.FromBase64String(b64)).Split(':', 2);
                // The id must be a job id: anything else (a NUL above all) is no cursor of ours and must not reach the query.
                return parts.Length == 2 && JobId.TryParse(parts[1], null, out _) && long.TryParse(parts[0], CultureInfo.InvariantCulture, out var ticks) && ticks >= 0 && ticks <= DateTimeOffset.MaxValue.UtcTicks
                    ? (new DateTimeOffset(ticks, TimeSpan.Zero), parts[1])
                    : null;
            }
            catch (FormatException)
            {
                return null;
            }
        }
    }
}
