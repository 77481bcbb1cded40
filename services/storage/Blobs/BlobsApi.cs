using System.Globalization;
using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Merkle;
using Platform.Hosting.Http;
using Platform.Storage.Replication;

namespace Platform.Storage.Blobs;

public static class BlobsApi
{
    public static WebApplicationBuilder AddBlobs(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<S3Options>().BindConfiguration(S3Options.SectionName);
        // The backend is chosen once at start; S3 options are only checked when S3 is the one chosen.
        builder.Services.AddSingleton<IBlobBackend>(sp => sp.GetRequiredService<IOptions<StorageOptions>>().Value.Backend == "s3"
            ? new S3Backend(Validated(sp.GetRequiredService<IOptions<S3Options>>()), sp.GetRequiredService<IOptions<StorageOptions>>())
            : new FileSystemBackend(sp.GetRequiredService<IOptions<StorageOptions>>()));
        builder.Services.AddSingleton<BlobStore>();
        builder.Services.AddScoped<Pinning>();
        builder.Services.AddGatewayProof();
        return builder;
    }

    private static IOptions<S3Options> Validated(IOptions<S3Options> options)
    {
        var results = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(options.Value, new(options.Value), results, validateAllProperties: true))
            throw new OptionsValidationException(S3Options.SectionName, typeof(S3Options), results.Select(r => $"Storage:S3: {r.ErrorMessage}"));
        return options;
    }

    public static RouteGroupBuilder MapBlobs(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/blobs").WithTags("Blobs");
        // A pin is charged to the account that makes it, which only the gateway can vouch for. A pin that names no
        // account is the network's own (tests, benchmarks): unowned and free.
        group.MapPost("/", Pin).RequireGatewayProof(accountOptional: true);
        group.MapMethods("/{cid}", [HttpMethods.Get, HttpMethods.Head], Read);
        // The owner is shown only to the owner: an account id is not the world's to read.
        group.MapGet("/{cid}/pin", PinStatus).RequireGatewayProof(accountOptional: true);
        group.MapGet("/{cid}/proof", Proof);
        group.MapDelete("/{cid}", NoDelete);
        return group;
    }

    internal static async Task<Results<Created<PinResponse>, ProblemHttpResult>> Pin(HttpContext http, Pinning pinning, IOptions<StorageOptions> options, CancellationToken ct)
    {
        var max = options.Value.MaxBlobBytes;
        if (http.Request.ContentLength > max)
            return TooLarge(max);
        var bodySize = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodySize is { IsReadOnly: false })
            bodySize.MaxRequestBodySize = max + 1; // our own check below gives the clearer answer

        var (blob, problem) = await pinning.PinAsync(http.Request.Body, http.GatewayAccountIfAny(), ct);
        if (problem is not null)
            return problem;
        return TypedResults.Created($"/v1/blobs/{blob!.Cid}", new PinResponse(blob.Cid.Value, blob.Size, blob.Sha256));
    }

    private sealed record Tree(long Size, byte[]? Leaves);

    /// <summary>The parsed CID, size and leaf hashes of a pin, or the problem that says why there are none.</summary>
    private static async Task<(Cid Cid, long Size, byte[] Leaves, ProblemHttpResult? Problem)> PinnedTreeAsync(string cid, BlobStore store, NpgsqlDataSource db, CancellationToken ct)
    {
        if (!Cid.TryParse(cid, out var parsed))
            return (default, 0, [], InvalidCid(cid));
        if (await TreeAsync(parsed, store, db, ct) is not var (size, leaves))
            return (parsed, 0, [], UnknownBlob(cid));
        return leaves is null ? (parsed, size, [], Unavailable(cid)) : (parsed, size, leaves, null);
    }

    /// <summary>
    /// The pin's size and leaf hashes; null when nothing is pinned under the CID. Pins made before Merkle
    /// trees were kept get theirs now, from a copy that hashes to the CID.
    /// </summary>
    private static async Task<(long Size, byte[]? Leaves)?> TreeAsync(Cid cid, BlobStore store, NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var tree = await connection.QuerySingleOrDefaultAsync<Tree>(new CommandDefinition(
            "select size, leaves from pins where cid = @cid", new { cid = cid.Value }, cancellationToken: ct));
        if (tree is null)
            return null;
        if (tree.Leaves is not null)
            return (tree.Size, tree.Leaves);
        var leaves = await store.ComputeLeavesAsync(cid, ct);
        if (leaves is not null)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update pins set leaves = @leaves, merkle_root = @root where cid = @cid and leaves is null",
                new { leaves, root = MerkleTree.Root(BlobStore.Split(leaves)), cid = cid.Value }, cancellationToken: ct));
        }
        return (tree.Size, leaves);
    }

    internal static async Task<IResult> Read(string cid, HttpContext http, BlobStore store, Peers peers, Scrubber scrubber, NpgsqlDataSource db,
        IOptions<StorageOptions> options, CancellationToken ct)
    {
        var (parsed, size, leaves, problem) = await PinnedTreeAsync(cid, store, db, ct);
        if (problem is not null)
            return problem;

        var response = http.Response;
        var etag = new EntityTagHeaderValue($"\"{parsed}\"");
        response.Headers.ETag = etag.ToString();
        // Content never changes for a CID, so caches may keep it forever.
        response.Headers.CacheControl = "public, max-age=31536000, immutable";
        response.Headers.AcceptRanges = "bytes";
        if (http.Request.GetTypedHeaders().IfNoneMatch.Any(t => t.Compare(etag, useStrongComparison: false) || t.Equals(EntityTagHeaderValue.Any)))
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);

        long offset = 0, length = size;
        if (SingleRange(http.Request, size) is { } range)
        {
            if (range.From is not long from)
            {
                response.Headers.ContentRange = $"bytes */{size}";
                return Problems.Create(StatusCodes.Status416RangeNotSatisfiable, "range-not-satisfiable", "Range not satisfiable",
                    $"the blob is {size} bytes; the requested range lies outside it");
            }
            (offset, length) = (from, range.To - from + 1);
            response.StatusCode = StatusCodes.Status206PartialContent;
            response.Headers.ContentRange = $"bytes {offset}-{offset + length - 1}/{size}";
        }
        response.ContentType = "application/octet-stream";
        response.ContentLength = length;
        if (HttpMethods.IsHead(http.Request.Method))
            return TypedResults.Empty;

        // A peer asking for a chunk gets only this node's own intact bytes: asking further peers could loop.
        var fromPeer = http.Request.Headers.ContainsKey(Peers.PeerHeader);
        CopyState? damage = null;
        IReadOnlyList<Peer>? holders = null;
        try
        {
            await store.CopyVerifiedAsync(parsed, size, leaves, offset, length, response.Body,
                fromPeer ? null : async (index, token) => await peers.FetchChunkAsync(holders ??= await peers.HoldersAsync(parsed, token), parsed, size, index, token),
                state => damage ??= state, ct);
        }
        catch (CorruptBlobException)
        {
            if (!response.HasStarted)
            {
                response.Headers.Remove(HeaderNames.ContentRange);
                response.ContentLength = null;
                return Unavailable(cid);
            }
            // Headers are out: cutting the connection is the only way left not to serve wrong bytes.
            http.Abort();
        }
        finally
        {
            if (damage is not null)
                await MarkLostAsync(parsed, options.Value.NodeId, db, scrubber);
        }
        return TypedResults.Empty;
    }

    private static async Task MarkLostAsync(Cid cid, string nodeId, NpgsqlDataSource db, Scrubber scrubber)
    {
        await using var connection = await db.OpenConnectionAsync(CancellationToken.None);
        await connection.ExecuteAsync(new CommandDefinition(
            "update replicas set status = 'lost', verified_at = '-infinity' where cid = @cid and node_id = @nodeId and status = 'ok'",
            new { cid = cid.Value, nodeId }));
        scrubber.Poke();
    }

    /// <summary>
    /// The one byte range asked for, clipped to the blob; From is null when it lies outside the blob. Null
    /// when there is no usable Range header, or several ranges (answered with the whole blob, as RFC 9110 allows).
    /// </summary>
    private static (long? From, long To)? SingleRange(HttpRequest request, long size)
    {
        var header = request.GetTypedHeaders().Range;
        if (header is null || header.Unit != "bytes" || header.Ranges.Count != 1)
            return null;
        var r = header.Ranges.First();
        if (r.From is null)
        {
            // bytes=-N: the last N bytes.
            if (r.To is not long suffix || suffix == 0 || size == 0)
                return (null, 0);
            return (Math.Max(0, size - suffix), size - 1);
        }
        if (r.From >= size)
            return (null, 0);
        return (r.From, Math.Min(r.To ?? size - 1, size - 1));
    }

    private sealed record PinRow(string Cid, long Size, string Sha256, string? Owner, DateTime PinnedAt, byte[]? MerkleRoot);

    private sealed record CopyRow(string NodeId, string Status, DateTime VerifiedAt, int RepairFailures, DateTime? RetryAt);

    internal static async Task<Results<Ok<PinStatusResponse>, ProblemHttpResult>> PinStatus(string cid, HttpContext http, NpgsqlDataSource db, IOptions<StorageOptions> options,
        CancellationToken ct)
    {
        if (!Cid.TryParse(cid, out _))
            return InvalidCid(cid);
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<PinRow>(new CommandDefinition(
            "select cid, size, sha256, owner, pinned_at as PinnedAt, merkle_root as MerkleRoot from pins where cid = @cid",
            new { cid }, cancellationToken: ct));
        if (row is null)
            return UnknownBlob(cid);
        var copies = (await connection.QueryAsync<CopyRow>(new CommandDefinition(
            """
            select node_id as NodeId, status, verified_at as VerifiedAt, repair_failures as RepairFailures, retry_at as RetryAt
            from replicas where cid = @cid order by node_id
            """,
            new { cid }, cancellationToken: ct))).ToList();
        var held = copies.Where(c => c.Status == "ok").ToList();
        var owner = row.Owner is not null && row.Owner == http.GatewayAccountIfAny() ? row.Owner : null;
        return TypedResults.Ok(new PinStatusResponse(row.Cid, row.Size, row.Sha256, owner, new DateTimeOffset(row.PinnedAt, TimeSpan.Zero),
            [.. held.Select(c => c.NodeId)], options.Value.ReplicaCount,
            [.. copies.Select(c => new CopyView(c.NodeId, c.Status, Utc(c.VerifiedAt), c.RepairFailures, c.RetryAt is { } retry ? Utc(retry) : null))],
            row.MerkleRoot is null ? null : Convert.ToHexStringLower(row.MerkleRoot), MerkleTree.ChunkCount(row.Size),
            held.Count == 0 ? null : Utc(held.Max(c => c.VerifiedAt))));
    }

    private static DateTimeOffset Utc(DateTime timestamp) => new(DateTime.SpecifyKind(timestamp, DateTimeKind.Utc));

    internal static async Task<Results<Ok<ProofResponse>, ProblemHttpResult>> Proof(string cid, string? chunk, BlobStore store, NpgsqlDataSource db, CancellationToken ct)
    {
        var (_, size, leaves, problem) = await PinnedTreeAsync(cid, store, db, ct);
        if (problem is not null)
            return problem;
        var count = MerkleTree.ChunkCount(size);
        if (!int.TryParse(chunk, NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index >= count)
            return Problems.BadRequest("invalid-chunk", "No such chunk",
                count == 0 ? "the empty blob has no chunks" : $"chunk must be a whole number from 0 to {count - 1}; the blob has {count} chunk(s) of {MerkleTree.ChunkSize} bytes");
        var list = BlobStore.Split(leaves);
        return TypedResults.Ok(new ProofResponse(cid, size, MerkleTree.ChunkSize, count, index, Convert.ToHexStringLower(list[index]),
            [.. MerkleTree.AuditPath(list, index).Select(Convert.ToHexStringLower)], Convert.ToHexStringLower(MerkleTree.Root(list)), "rfc6962-sha256"));
    }

    internal static ProblemHttpResult NoDelete(HttpContext http)
    {
        http.Response.Headers.Allow = "GET, HEAD";
        return Problems.Create(StatusCodes.Status405MethodNotAllowed, "pins-are-permanent", "Pins are permanent",
            "pinned blobs are kept forever and cannot be deleted");
    }

    private static ProblemHttpResult InvalidCid(string cid) => Problems.BadRequest("invalid-cid", "Malformed CID",
        $"'{cid}' is not a CIDv1 raw sha2-256 base32 CID (they start with 'bafkrei')");

    private static ProblemHttpResult UnknownBlob(string cid) => Problems.NotFound("blob-not-found", "Blob not found", $"no blob is pinned with CID {cid}");

    private static ProblemHttpResult Unavailable(string cid) => Problems.Create(StatusCodes.Status503ServiceUnavailable, "blob-unavailable",
        "No intact copy reachable", $"this node's copy of {cid} failed verification and no peer could send an intact one; it is not served");

    internal static ProblemHttpResult TooLarge(long max) => Problems.Create(StatusCodes.Status413PayloadTooLarge, "blob-too-large",
        "Blob too large", $"blobs may be at most {max} bytes");
}
