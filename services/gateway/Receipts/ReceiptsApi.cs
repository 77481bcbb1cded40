using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Receipts;
using Platform.Contracts.Signing;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;

namespace Platform.Gateway.Receipts;

/// <summary>
/// Signed receipts of completed jobs (GET /v1/jobs/{id}/receipt) and the key they are signed with
/// (GET /v1/receipts/key). A receipt is built from the gateway's job record, which JobCompleted and PaymentSettled
/// filled in, and signed on every request: its bytes are the canonical form <see cref="ReceiptJson"/> defines, sent
/// as they are so a client can store and verify them without re-encoding.
/// </summary>
public static class ReceiptsApi
{
    public const string Algorithm = "ECDSA P-256 with SHA-256; signature DER, base64; key SubjectPublicKeyInfo, base64";

    public static WebApplicationBuilder AddReceipts(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ReceiptOptions>().BindConfiguration(ReceiptOptions.SectionName).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<ReceiptOptions>, ReceiptOptionsValidator>();
        builder.Services.AddSingleton<ReceiptSigningKey>();
        return builder;
    }

    public static IEndpointRouteBuilder MapReceipts(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/jobs/{id}/receipt", Get).WithTags("Jobs").RequireAuthorization(Roles.Client)
            .Produces<SignedReceipt>(StatusCodes.Status200OK, ReceiptJson.MediaType);
        app.MapGet("/v1/receipts/key", Key).WithTags("Jobs").AllowAnonymous();
        return app;
    }

    internal static async Task<Ok<ReceiptKeyView>> Key(ReceiptSigningKey signing, CancellationToken ct)
    {
        using var key = await signing.OpenAsync(ct);
        var publicKey = ResultSignature.ExportPublicKey(key);
        return TypedResults.Ok(new ReceiptKeyView(publicKey, ReceiptVerifier.Fingerprint(publicKey), Algorithm));
    }

    private sealed record JobRow(string Id, string ClientAccountId, string Kernel, string Spec, string Status, string? Outputs, decimal? Cost,
        string? ErrorReason, string? ErrorDetail, DateTime CreatedAt, DateTime? CompletedAt);

    private sealed record AttemptRow(string AttemptId, string WorkerId, string? Signature, string? PublicKey, string? Metrics, bool? SpotCheck);

    internal static async Task<Results<FileContentHttpResult, ProblemHttpResult>> Get(
        string id, HttpContext http, NpgsqlDataSource db, ReceiptSigningKey signing, TimeProvider clock, CancellationToken ct)
    {
        var owner = http.User.IsAdmin() ? null : http.User.AccountOf();
        JobRow? job = null;
        List<AttemptRow> attempts = [];
        if (JobId.TryParse(id, null, out _))
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            job = await connection.QuerySingleOrDefaultAsync<JobRow>(new CommandDefinition(
                """
                select id, client_account_id as ClientAccountId, kernel, spec::text as Spec, status, outputs::text as Outputs, cost,
                       error_reason as ErrorReason, error_detail as ErrorDetail, created_at as CreatedAt, completed_at as CompletedAt
                from jobs where id = @id and (@owner::text is null or client_account_id = @owner)
                """, new { id, owner }, cancellationToken: ct));
            if (job is not null)
                attempts = [.. await connection.QueryAsync<AttemptRow>(new CommandDefinition(
                    """
                    select attempt_id as AttemptId, worker_id as WorkerId, signature, public_key as PublicKey, metrics::text as Metrics, spot_check as SpotCheck
                    from job_attempts where job_id = @id and status = 'accepted' order by accepted_index, attempt_id
                    """, new { id }, cancellationToken: ct))];
        }
        // Another tenant's job is reported exactly like a missing one.
        if (job is null)
            return Problems.NotFound("job-not-found", "Job not found", $"no job '{id}' for this account");
        if (job.Status != JobStatuses.Completed)
            return Problems.Create(StatusCodes.Status409Conflict, "no-receipt", "Job has no receipt",
                JobStatuses.IsTerminal(job.Status)
                    ? $"job {id} {job.Status}" + (job.ErrorReason is { } reason ? $": {reason}: {job.ErrorDetail}" : "") + "; only completed jobs have receipts"
                    : $"job {id} has no result yet (it is {job.Status}); receipts are issued once it completes");
        if (job.Cost is not { } cost || job.Outputs is null || attempts.Count == 0)
        {
            // JobCompleted and PaymentSettled arrive separately; the receipt waits for both.
            http.Response.Headers.RetryAfter = "1";
            return Problems.Create(StatusCodes.Status409Conflict, "receipt-pending", "Receipt not ready",
                $"job {id} completed but its payment is not settled yet; retry in a moment");
        }
        if (attempts.Any(a => a.PublicKey is null || a.Signature is null || a.Metrics is null))
            return Problems.Create(StatusCodes.Status409Conflict, "receipt-unavailable", "No receipt for this job",
                $"job {id} completed before this gateway recorded the worker keys and metrics receipts name");

        var spec = JsonSerializer.Deserialize<JobSpec>(job.Spec, PlatformJson.Options)!;
        var accepted = attempts.Select(a => ReceiptAttempt.From(a.AttemptId, a.WorkerId, a.PublicKey!, a.Signature!, a.SpotCheck ?? false,
            JsonSerializer.Deserialize<AttemptMetrics>(a.Metrics!, PlatformJson.Options)!)).ToList();
        var receipt = new JobReceipt
        {
            Format = JobReceipt.FormatV1,
            IssuedAt = clock.GetUtcNow(),
            JobId = job.Id,
            ClientAccountId = job.ClientAccountId,
            Kernel = job.Kernel,
            KernelVersion = KernelCatalog.IsKnown(job.Kernel) ? KernelCatalog.VersionOf(job.Kernel) : "unknown",
            Inputs = Sorted(spec.Inputs),
            Params = Sorted(spec.Params),
            Replicas = spec.Replicas,
            Requirements = new ReceiptRequirements { Device = spec.Requirements.Device, MinMemoryMb = spec.Requirements.MinMemoryMb, Region = spec.Requirements.Region },
            MaxPrice = spec.MaxPrice,
            Status = job.Status,
            CreatedAt = new DateTimeOffset(job.CreatedAt, TimeSpan.Zero),
            CompletedAt = new DateTimeOffset(job.CompletedAt ?? job.CreatedAt, TimeSpan.Zero),
            Outputs = Sorted(JsonSerializer.Deserialize<Dictionary<string, Cid>>(job.Outputs, PlatformJson.Options)!),
            Attempts = accepted,
            Energy = ReceiptEnergy.Of(accepted),
            Cost = cost,
        };
        using var key = await signing.OpenAsync(ct);
        return TypedResults.File(ReceiptJson.Serialize(ReceiptJson.Sign(receipt, key)), ReceiptJson.MediaType, $"{job.Id}.receipt.json");
    }

    // Dictionary keeps insertion order, so this is the order the receipt lists them in.
    private static Dictionary<string, T> Sorted<T>(IReadOnlyDictionary<string, T> map) =>
        map.OrderBy(e => e.Key, StringComparer.Ordinal).ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
}
