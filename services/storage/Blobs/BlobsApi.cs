using Dapper;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;

namespace Platform.Storage.Blobs;

public sealed record PinResponse(string Cid, long Size, string Sha256);

public sealed record PinStatusResponse(string Cid, long Size, string Sha256, string? Owner, DateTimeOffset PinnedAt, IReadOnlyList<string> Replicas, DateTimeOffset LastVerifiedAt);

public static class BlobsApi
{
    /// <summary>Set by the gateway from the authenticated key; storage is never exposed directly.</summary>
    public const string AccountHeader = "X-Platform-Account";

    public static WebApplicationBuilder AddBlobs(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<BlobStore>();
        return builder;
    }

    public static RouteGroupBuilder MapBlobs(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/blobs").WithTags("Blobs");
        group.MapPost("/", Pin);
        group.MapMethods("/{cid}", [HttpMethods.Get, HttpMethods.Head], Read);
        group.MapGet("/{cid}/pin", PinStatus);
        group.MapDelete("/{cid}", NoDelete);
        return group;
    }

    private const string InsertPin = """
        insert into pins (cid, size, sha256, owner, node_id) values (@Cid, @Size, @Sha256, @Owner, @NodeId)
        on conflict (cid) do nothing
        """;

    internal static async Task<Results<Created<PinResponse>, ProblemHttpResult>> Pin(
        HttpContext http, BlobStore store, NpgsqlDataSource db, MessageOutbox outbox, IOptions<StorageOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var max = options.Value.MaxBlobBytes;
        if (http.Request.ContentLength > max)
            return TooLarge(max);
        var bodySize = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodySize is { IsReadOnly: false })
            bodySize.MaxRequestBodySize = max + 1; // our own check below gives the clearer answer

        StoredBlob blob;
        try
        {
            blob = await store.PutAsync(http.Request.Body, max, ct);
        }
        catch (BlobTooLargeException)
        {
            return TooLarge(max);
        }

        var owner = http.Request.Headers[AccountHeader].ToString();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition(InsertPin, new
        {
            Cid = blob.Cid.Value,
            blob.Size,
            blob.Sha256,
            Owner = string.IsNullOrEmpty(owner) ? null : owner,
            options.Value.NodeId,
        }, tx, cancellationToken: ct));
        if (inserted == 1)
        {
            await outbox.EnqueueAsync(tx, new BlobPinned
            {
                Cid = blob.Cid,
                Size = blob.Size,
                Owner = AccountId.TryParse(owner, null, out var account) ? account : null,
                NodeId = options.Value.NodeId,
                OccurredAt = clock.GetUtcNow(),
            }, ct: ct);
        }
        await outbox.CommitAsync(tx, ct);
        return TypedResults.Created($"/v1/blobs/{blob.Cid}", new PinResponse(blob.Cid.Value, blob.Size, blob.Sha256));
    }

    internal static async Task<IResult> Read(string cid, BlobStore store, CancellationToken ct)
    {
        if (!Cid.TryParse(cid, out var parsed))
            return InvalidCid(cid);
        FileStream? stream;
        try
        {
            stream = await store.OpenVerifiedAsync(parsed, ct);
        }
        catch (CorruptBlobException)
        {
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "blob-corrupt", "Stored copy failed verification",
                $"the stored bytes of {cid} no longer match its CID; they are not served");
        }
        if (stream is null)
            return UnknownBlob(cid);
        // Content never changes for a CID, so caches may keep it forever.
        return TypedResults.Stream(stream, "application/octet-stream", lastModified: null,
            entityTag: new EntityTagHeaderValue($"\"{parsed}\""), enableRangeProcessing: true)
            .WithImmutableCaching();
    }

    private sealed record PinRow(string Cid, long Size, string Sha256, string? Owner, string NodeId, DateTime PinnedAt, DateTime LastVerifiedAt);

    internal static async Task<Results<Ok<PinStatusResponse>, ProblemHttpResult>> PinStatus(string cid, NpgsqlDataSource db, CancellationToken ct)
    {
        if (!Cid.TryParse(cid, out _))
            return InvalidCid(cid);
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<PinRow>(new CommandDefinition(
            "select cid, size, sha256, owner, node_id as NodeId, pinned_at as PinnedAt, last_verified_at as LastVerifiedAt from pins where cid = @cid",
            new { cid }, cancellationToken: ct));
        if (row is null)
            return UnknownBlob(cid);
        return TypedResults.Ok(new PinStatusResponse(row.Cid, row.Size, row.Sha256, row.Owner,
            new DateTimeOffset(row.PinnedAt, TimeSpan.Zero), [row.NodeId], new DateTimeOffset(row.LastVerifiedAt, TimeSpan.Zero)));
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

    private static ProblemHttpResult TooLarge(long max) => Problems.Create(StatusCodes.Status413PayloadTooLarge, "blob-too-large",
        "Blob too large", $"blobs may be at most {max} bytes");
}

internal static class ImmutableCaching
{
    public static IResult WithImmutableCaching(this IResult inner) => new CachedResult(inner);

    private sealed class CachedResult(IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.CacheControl = "public, max-age=31536000, immutable";
            return inner.ExecuteAsync(httpContext);
        }
    }
}
