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

/// <summary>A node key as its operator sees it: the key itself only in the answer that made it.</summary>
public sealed record NodeKeyCreated(string Id, string Key, DateTimeOffset CreatedAt);

public sealed record NodeKeyView(string Id, string? WorkerId, DateTimeOffset CreatedAt);

/// <summary>
/// Node keys: an operator (with its own key) makes a key for each node it runs. A node key authenticates as the
/// operator's account with the role <see cref="Roles.Node"/>, which may only fetch and pin blobs and enroll
/// (<c>POST /v1/nodes</c>): whoever controls a node's machine cannot stake, unstake, read earnings or make more keys.
/// A node key is bound to the first worker id it enrolls; another id with it is refused (409), so a stolen node key
/// registers no other node under the operator.
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
        keys.MapPost("/", Create).ProducesProblem(StatusCodes.Status409Conflict);
        keys.MapGet("/", List);
        keys.MapDelete("/{id}", Revoke).ProducesProblem(StatusCodes.Status404NotFound);
        return keys;
    }

    internal static async Task<Results<Created<NodeKeyCreated>, ProblemHttpResult>> Create(
        HttpContext http, NpgsqlDataSource db, ApiKeyHasher hasher, TimeProvider clock, CancellationToken ct)
    {
        var id = "nk_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
        var key = ApiKeys.New();
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        // The count and the insert in one statement; two racing creations may pass the bound by one, which is harmless.
        var made = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into api_keys (key_hash, account_id, scheme, id, scope, created_at)
            select @hash, @account, @scheme, @id, @scope, @now
            where (select count(*) from api_keys where account_id = @account and scope is not null) < @max
            """,
            new { hash = hasher.Hash(key), account = http.User.AccountOf(), scheme = ApiKeys.HmacScheme, id, scope = Roles.Node, now, max = MaxPerOperator },
            cancellationToken: ct));
        if (made == 0)
            return Problems.Create(StatusCodes.Status409Conflict, "node-key-limit", "Too many node keys",
                $"an operator holds at most {MaxPerOperator} node keys; revoke unused ones (DELETE /v1/account/node-keys/{{id}})");
        return TypedResults.Created($"/v1/account/node-keys/{id}", new NodeKeyCreated(id, key, now));
    }

    internal static async Task<Ok<List<NodeKeyView>>> List(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var keys = await connection.QueryAsync<NodeKeyView>(new CommandDefinition(
            "select id as Id, worker_id as WorkerId, created_at as CreatedAt from api_keys where account_id = @account and scope is not null order by created_at, id",
            new { account = http.User.AccountOf() }, cancellationToken: ct));
        return TypedResults.Ok(keys.ToList());
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
        var bound = await connection.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            "update api_keys set worker_id = coalesce(worker_id, @workerId) where id = @keyId and scope is not null returning worker_id",
            new { workerId, keyId }, cancellationToken: ct));
        if (bound is null)
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "Missing or invalid API key", "this node key has been revoked");
        if (bound != workerId)
            return Problems.Create(StatusCodes.Status409Conflict, "node-key-bound", "Node key bound to another worker",
                $"this node key enrolled worker {bound} and works for that node only; make a node key for each node (POST /v1/account/node-keys)");

        body.Position = 0;
        http.Request.Body = body;
        http.Request.ContentLength = body.Length;
        return null;
    }
}
