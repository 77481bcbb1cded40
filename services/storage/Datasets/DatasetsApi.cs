using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Hosting.Http;
using Platform.Storage.Blobs;

namespace Platform.Storage.Datasets;

public static partial class DatasetsApi
{
    public const string ManifestType = "platform.dataset/v1";
    private const int MaxBlobs = 10_000;

    // Compact, fixed property order, camelCase: the same dataset always serialises to the same bytes.
    private static readonly JsonSerializerOptions ManifestJson = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public static RouteGroupBuilder MapDatasets(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/datasets").WithTags("Datasets");
        // The manifest is pinned, and charged, like any blob: to the account the gateway proves, if any.
        group.MapPost("/", Create).RequireGatewayProof(accountOptional: true);
        // The owner is shown only to the owner: an account id is not the world's to read.
        group.MapGet("/{cid}", Get).RequireGatewayProof(accountOptional: true);
        return group;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9.+\- ()]{0,99}$")]
    private static partial Regex LicensePattern();

    internal static async Task<Results<Created<DatasetView>, ValidationProblem, ProblemHttpResult>> Create(HttpContext http, Pinning pinning, NpgsqlDataSource db, CancellationToken ct)
    {
        var (request, parseError) = await JsonBody.ReadAsync<CreateDatasetRequest>(http, ct);
        if (parseError is not null)
            return parseError;
        var errors = new Dictionary<string, string[]>();
        var name = request!.Name?.Trim();
        // Control characters (a NUL above all, which Postgres text cannot hold) are no part of a name.
        if (string.IsNullOrEmpty(name) || name.Length > 200 || name.Any(char.IsControl))
            errors["name"] = ["name is required, at most 200 characters, without control characters"];
        if (request.Description is { Length: > 10_000 })
            errors["description"] = ["description is at most 10,000 characters"];
        if (request.License is null || !LicensePattern().IsMatch(request.License))
            errors["license"] = ["license is required: an SPDX identifier such as CC-BY-4.0 or MIT, or a short name"];
        var cids = new List<Cid>();
        if (request.Blobs is not { Count: > 0 and <= MaxBlobs })
            errors["blobs"] = [$"blobs is required: 1 to {MaxBlobs:N0} CIDs of pinned blobs"];
        else
        {
            foreach (var (value, index) in request.Blobs.Select((b, i) => (b, i)))
            {
                if (Cid.TryParse(value, out var cid))
                    cids.Add(cid);
                else
                    errors[$"blobs[{index}]"] = [$"'{value}' is not a CIDv1 raw sha2-256 base32 CID (they start with 'bafkrei')"];
            }
        }
        if (errors.Count > 0)
            return Problems.Validation(errors, "the dataset is not valid");

        var distinct = cids.Distinct().ToList();
        Dictionary<string, long> sizes;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            sizes = (await connection.QueryAsync<(string Cid, long Size)>(new CommandDefinition(
                "select cid, size from pins where cid = any(@cids)", new { cids = distinct.Select(c => c.Value).ToArray() }, cancellationToken: ct)))
                .ToDictionary(r => r.Cid, r => r.Size);
        }
        var missing = distinct.Where(c => !sizes.ContainsKey(c.Value)).ToList();
        if (missing.Count > 0)
            return Problems.Create(StatusCodes.Status422UnprocessableEntity, "blob-not-found", "Blobs not pinned",
                $"a dataset names only pinned blobs; not pinned: {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? $" and {missing.Count - 10} more" : "")}");

        var blobs = distinct.Select(c => new DatasetBlob(c.Value, sizes[c.Value])).ToList();
        var manifest = new DatasetManifest(ManifestType, name!, request.Description ?? "", request.License!, blobs, blobs.Sum(b => b.Size));
        var bytes = JsonSerializer.SerializeToUtf8Bytes(manifest, ManifestJson);
        var owner = http.GatewayAccountIfAny();
        var (pinned, problem) = await pinning.PinAsync(new MemoryStream(bytes), owner, ct);
        if (problem is not null)
            return problem;

        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                insert into datasets (cid, name, owner, blob_count, total_size) values (@cid, @name, @owner, @count, @size)
                on conflict (cid) do nothing
                """,
                new { cid = pinned!.Cid.Value, name, owner = string.IsNullOrEmpty(owner) ? null : owner, count = blobs.Count, size = manifest.TotalSize }, cancellationToken: ct));
        }
        var view = await LoadAsync(pinned.Cid, manifest, owner, db, ct);
        return TypedResults.Created($"/v1/datasets/{pinned.Cid}", view);
    }

    internal static async Task<Results<Ok<DatasetView>, ProblemHttpResult>> Get(string cid, HttpContext http, BlobStore store, NpgsqlDataSource db, CancellationToken ct)
    {
        if (!Cid.TryParse(cid, out var parsed))
            return Problems.BadRequest("invalid-cid", "Malformed CID", $"'{cid}' is not a CIDv1 raw sha2-256 base32 CID (they start with 'bafkrei')");
        (long Size, byte[] Leaves)? tree;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            tree = await connection.QuerySingleOrDefaultAsync<(long, byte[])?>(new CommandDefinition(
                "select p.size, p.leaves from datasets d join pins p on p.cid = d.cid where d.cid = @cid and p.leaves is not null",
                new { cid = parsed.Value }, cancellationToken: ct));
        }
        if (tree is not var (size, leaves))
            return Problems.NotFound("dataset-not-found", "Dataset not found", $"no dataset has the CID {cid}");
        // The manifest is read like any blob: verified chunk by chunk, so what is returned is what the CID names.
        using var manifestBytes = new MemoryStream();
        try
        {
            await store.CopyVerifiedAsync(parsed, size, leaves, 0, size, manifestBytes, fallback: null, damaged: null, ct);
        }
        catch (CorruptBlobException)
        {
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "blob-unavailable", "No intact copy here",
                $"this node's copy of the manifest {cid} failed verification; it is being repaired");
        }
        var manifest = JsonSerializer.Deserialize<DatasetManifest>(manifestBytes.ToArray(), ManifestJson)!;
        return TypedResults.Ok(await LoadAsync(parsed, manifest, http.GatewayAccountIfAny(), db, ct));
    }

    /// <param name="viewer">The account asking (proved by the gateway), or null: the owner is named only to itself.</param>
    private static async Task<DatasetView> LoadAsync(Cid cid, DatasetManifest manifest, string? viewer, NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleAsync<(string? Owner, DateTime CreatedAt)>(new CommandDefinition(
            "select owner, created_at from datasets where cid = @cid", new { cid = cid.Value }, cancellationToken: ct));
        var owner = row.Owner is not null && row.Owner == viewer ? row.Owner : null;
        return new DatasetView(cid.Value, manifest, owner, new DateTimeOffset(DateTime.SpecifyKind(row.CreatedAt, DateTimeKind.Utc)));
    }
}
