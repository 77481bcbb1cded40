using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Hosting.Http;

namespace Platform.Gateway.Jobs;

/// <summary>An Idempotency-Key with the hash of the request it came with.</summary>
public sealed record IdempotencyKey(string Key, string RequestHash);

/// <summary>What a key was first used for: a job (POST /v1/jobs) or a batch (POST /v1/jobs:batch).</summary>
public sealed record ClaimedKey(string RequestHash, string? JobId, string? BatchId);

/// <summary>
/// Idempotency-Key on POST /v1/jobs and POST /v1/jobs:batch (as in the IETF httpapi draft): the same key with the
/// same body gives back what the first request created, whatever state it is in now; the same key with another body
/// is a 409. Keys belong to the account, so two clients never collide. The body is compared as parsed JSON
/// (re-serialized), so whitespace does not matter.
/// </summary>
public static class IdempotencyKeys
{
    public const string Header = "Idempotency-Key";
    private const int MaxLength = 255;

    public static IdempotencyKey? FromRequest<T>(HttpContext http, T request, out ProblemHttpResult? problem)
    {
        problem = null;
        if (!http.Request.Headers.TryGetValue(Header, out var values))
            return null;
        var key = values.ToString();
        if (values.Count != 1 || key.Length is 0 or > MaxLength || key.Any(c => c is < '!' or > '~'))
        {
            problem = Problems.BadRequest("invalid-idempotency-key", "Invalid Idempotency-Key",
                $"send one Idempotency-Key of 1 to {MaxLength} visible ASCII characters, such as a UUID");
            return null;
        }
        var canonical = JsonSerializer.SerializeToUtf8Bytes(request, PlatformJson.Options);
        return new IdempotencyKey(key, Convert.ToHexStringLower(SHA256.HashData(canonical)));
    }

    /// <summary>Records the key for the job or batch; false when another request holds it already.</summary>
    public static async Task<bool> ClaimAsync(NpgsqlTransaction tx, AccountId account, IdempotencyKey key, string? jobId, string? batchId, CancellationToken ct) =>
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into idempotency_keys (account_id, key, request_hash, job_id, batch_id) values (@account, @Key, @RequestHash, @jobId, @batchId)
            on conflict (account_id, key) do nothing
            """, new { account = account.Value, key.Key, key.RequestHash, jobId, batchId }, tx, cancellationToken: ct)) == 1;

    /// <summary>What the key was first used for, or null for a new key.</summary>
    public static async Task<ClaimedKey?> FindAsync(NpgsqlDataSource db, AccountId account, IdempotencyKey key, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<ClaimedKey>(new CommandDefinition(
            "select request_hash as RequestHash, job_id as JobId, batch_id as BatchId from idempotency_keys where account_id = @account and key = @Key",
            new { account = account.Value, key.Key }, cancellationToken: ct));
    }

    /// <summary>The answer when the key came with a different request before.</summary>
    public static ProblemHttpResult Reused(IdempotencyKey key, ClaimedKey earlier) =>
        Problems.Create(StatusCodes.Status409Conflict, "idempotency-key-reused", "Idempotency-Key already used",
            $"the key '{key.Key}' was used for a different request ({(earlier.JobId is { } job ? $"job {job}" : $"batch {earlier.BatchId}")}); use a new key for a new submission");

    /// <summary>The answer to a repeated key on POST /v1/jobs: the earlier job, or a 409 for a different request; null for a new key.</summary>
    public static async Task<Results<Accepted<JobView>, ValidationProblem, ProblemHttpResult>?> ReplayAsync(
        HttpContext http, NpgsqlDataSource db, AccountId account, IdempotencyKey key, CancellationToken ct)
    {
        var row = await FindAsync(db, account, key, ct);
        if (row is null)
            return null;
        if (row.RequestHash != key.RequestHash || row.JobId is null)
            return Reused(key, row);
        var view = await JobViewStore.LoadAsync(db, row.JobId, ct);
        http.Response.Headers["Idempotent-Replayed"] = "true";
        return TypedResults.Accepted($"/v1/jobs/{row.JobId}", view);
    }
}
