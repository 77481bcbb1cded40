using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Api;
using Platform.Gateway.Auth;
using Platform.Gateway.Forwarding;
using Platform.Hosting.Http;

namespace Platform.Gateway.Accounts;

/// <summary>
/// Node keys: an operator (with its own key) makes a key for each node it runs. A node key authenticates as the
/// operator's account with the role <see cref="Roles.Node"/>, which may only fetch and pin blobs and enroll
/// (<c>POST /v1/nodes</c>): whoever controls a node's machine cannot stake, unstake, read earnings or make more keys.
/// A node key is bound to the first worker id it enrolls (or the first N, when made for N replicas sharing it);
/// another id with it is refused (409), so a stolen node key registers no other node under the operator.
/// </summary>
public static class NodeKeysApi
{
    /// <summary>Node keys one operator may hold at once: enough for any fleet, bounded so nobody fills the table.</summary>
    public const int MaxPerOperator = 1000;

    /// <summary>An enrollment request is a worker id, a public key and a signature: a few hundred bytes.</summary>
    private const int MaxEnrollmentBytes = 16 * 1024;

    public static RouteGroupBuilder MapNodeKeys(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/account/node-keys").WithTags("Account").RequireAuthorization(Roles.Operator);
        keys.MapPost("/", Create).Accepts<CreateNodeKeyRequest>("application/json").ProducesProblem(StatusCodes.Status409Conflict);
        keys.MapGet("/", List);
        keys.MapDelete("/{id}", Revoke).ProducesProblem(StatusCodes.Status404NotFound);
        return keys;
    }

    internal static async Task<Results<Created<NodeKeyCreated>, ProblemHttpResult, ValidationProblem>> Create(
        HttpContext http, NpgsqlDataSource db, ApiKeyHasher hasher, TimeProvider clock, CancellationToken ct)
    {
        // The body is optional: no body is one worker.
        var workers = 1;
        if (http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0)
        {
            var (request, problem) = await JsonBody.ReadAsync<CreateNodeKeyRequest>(http, ct);
            if (problem is not null)
                return problem;
            if (request!.Workers is < 1 or > 1000)
                return Problems.Validation(new Dictionary<string, string[]> { ["workers"] = ["workers must be between 1 and 1000"] }, "the node key could not be made");
            workers = request.Workers ?? 1;
        }
        var id = "nk_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
        var key = ApiKeys.New();
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        // The count and the insert in one statement; two racing creations may pass the bound by one, which is harmless.
        var made = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into api_keys (key_hash, account_id, scheme, id, scope, max_workers, created_at)
            select @hash, @account, @scheme, @id, @scope, @workers, @now
            where (select count(*) from api_keys where account_id = @account and scope is not null) < @max
            """,
            new { hash = hasher.Hash(key), account = http.User.AccountOf(), scheme = ApiKeys.HmacScheme, id, scope = Roles.Node, workers, now, max = MaxPerOperator },
            cancellationToken: ct));
        if (made == 0)
            return Problems.Create(StatusCodes.Status409Conflict, "node-key-limit", "Too many node keys",
                $"an operator holds at most {MaxPerOperator} node keys; revoke unused ones (DELETE /v1/account/node-keys/{{id}})");
        return TypedResults.Created($"/v1/account/node-keys/{id}", new NodeKeyCreated(id, key, workers, now));
    }

    internal static async Task<Ok<List<NodeKeyView>>> List(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var keys = await connection.QueryAsync<NodeKeyRow>(new CommandDefinition(
            "select id as Id, max_workers as Workers, worker_ids as WorkerIds, created_at as CreatedAt from api_keys where account_id = @account and scope is not null order by created_at, id",
            new { account = http.User.AccountOf() }, cancellationToken: ct));
        return TypedResults.Ok(keys.Select(k => new NodeKeyView(k.Id, k.Workers, k.WorkerIds, new DateTimeOffset(DateTime.SpecifyKind(k.CreatedAt, DateTimeKind.Utc)))).ToList());
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> Revoke(
        string id, HttpContext http, NpgsqlDataSource db, ApiKeyCache cache, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var hash = await connection.QuerySingleOrDefaultAsync<byte[]>(new CommandDefinition(
            "delete from api_keys where id = @id and account_id = @account and scope is not null returning key_hash",
            new { id, account = http.User.AccountOf() }, cancellationToken: ct));
        if (hash is null)
            return Problems.NotFound("node-key-not-found", "No such node key", "this operator has no node key with that id");
        // This gateway refuses it from now on; other instances once their cached entry expires (Platform:ApiKeyCacheTtl).
        cache.Forget(hash);
        return TypedResults.NoContent();
    }

    /// <summary>
    /// <c>POST /v1/nodes</c>: forwarded to the scheduler for the key's account. A node key is first bound to the worker
    /// id it enrolls (atomically, the first one wins); an enrollment of another id with it is refused here. The body
    /// is read (it is small) with the same JSON rules the scheduler uses, so both see the same worker id, and then
    /// forwarded as it came.
    /// </summary>
    internal static async Task Enroll(HttpContext http, UpstreamForwarder forwarder, NpgsqlDataSource db, IOptions<JsonOptions> json, CancellationToken ct)
    {
        if (http.User.NodeKeyIdOf() is { } keyId)
        {
            if (await BindAsync(http, keyId, db, json.Value.SerializerOptions, ct) is { } refused)
            {
                await refused.ExecuteAsync(http);
                return;
            }
        }
        await forwarder.ForwardAsync(http, Upstream.Scheduler, "/v1/nodes", http.User.AccountOf());
    }

    // Classes, not positional records: Dapper maps text[] and timestamptz onto settable properties.
    private sealed class Binding
    {
        public bool Bound { get; init; }

        public string[] WorkerIds { get; init; } = [];
    }

    private sealed class NodeKeyRow
    {
        public string Id { get; init; } = "";

        public int Workers { get; init; }

        public string[] WorkerIds { get; init; } = [];

        public DateTime CreatedAt { get; init; }
    }

    private static async Task<IResult?> BindAsync(HttpContext http, string keyId, NpgsqlDataSource db, JsonSerializerOptions options, CancellationToken ct)
    {
        if (!(http.Request.ContentType ?? "").StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Expected JSON", "send the body as application/json");
        var body = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await http.Request.Body.ReadAsync(buffer, ct)) > 0)
        {
            if (body.Length + read > MaxEnrollmentBytes)
                return Problems.Create(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "Request body too large", $"an enrollment is at most {MaxEnrollmentBytes} bytes");
            body.Write(buffer, 0, read);
        }
        string? workerId;
        try
        {
            workerId = JsonSerializer.Deserialize<NodeEnrollmentRequest>(body.GetBuffer().AsSpan(0, (int)body.Length), options)?.WorkerId;
        }
        catch (JsonException)
        {
            workerId = null;
        }
        if (string.IsNullOrEmpty(workerId) || workerId.Length > 100)
            return Problems.Validation(new Dictionary<string, string[]> { ["workerId"] = ["a worker id: wrk_ followed by lower-case letters and digits"] },
                "the enrollment request is not valid");

        await using var connection = await db.OpenConnectionAsync(ct);
        // One statement under the row's lock: concurrent enrollments of new ids cannot both take the last place.
        var bound = await connection.QuerySingleOrDefaultAsync<Binding>(new CommandDefinition(
            """
            update api_keys set worker_ids = case when @workerId = any(worker_ids) then worker_ids
                                                  when cardinality(worker_ids) < max_workers then worker_ids || @workerId
                                                  else worker_ids end
            where id = @keyId and scope is not null
            returning @workerId = any(worker_ids) as Bound, worker_ids as WorkerIds
            """,
            new { workerId, keyId }, cancellationToken: ct));
        if (bound is null)
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "Missing or invalid API key", "this node key has been revoked");
        if (!bound.Bound)
            return Problems.Create(StatusCodes.Status409Conflict, "node-key-bound", "Node key bound to other workers",
                $"this node key enrolled {string.Join(", ", bound.WorkerIds)} and works for those nodes only; make a node key for each node (POST /v1/account/node-keys)");

        body.Position = 0;
        http.Request.Body = body;
        http.Request.ContentLength = body.Length;
        return null;
    }
}
