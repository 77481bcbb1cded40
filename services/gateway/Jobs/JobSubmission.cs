using System.Collections.Concurrent;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Gateway.Forwarding;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;

namespace Platform.Gateway.Jobs;

/// <summary>
/// The one path by which jobs enter the network: POST /v1/jobs is a batch of one, POST /v1/jobs:batch a batch of up
/// to <see cref="MaxBatchSize"/>. Every entry is checked before anything is written, and the first bad entry refuses
/// the whole submission; then all of it is written in one transaction with set-based statements (jobs, their
/// "pending" events and their JobSubmitted messages), so a batch costs a handful of statements, not thousands.
/// </summary>
public static class JobSubmission
{
    public const int MaxBatchSize = 10_000;

    /// <summary>Input headers read from storage at once; each is a small range GET, cached once read.</summary>
    private const int HeaderReadsInParallel = 8;

    /// <summary>A job that passed every check, ready to be written.</summary>
    public sealed record CheckedJob(JobId Id, JobSpec Spec, double Gflop, long InputBytes, long OutputBytes);

    /// <summary>Either every entry as a checked job, or the refusal (a validation problem or another problem).</summary>
    public sealed record CheckResult(IReadOnlyList<CheckedJob>? Jobs, ValidationProblem? Invalid, ProblemHttpResult? Refused);

    /// <summary>
    /// Checks every entry: shape, kernel, inputs pinned and fitting the kernel. For an array (<paramref name="isArray"/>)
    /// every message names its entry (<c>jobs[3].kernel</c>) and the problem carries the first bad entry's
    /// <c>index</c>; a single job's problems read as they always did.
    /// </summary>
    /// <param name="maxOutputBytes">Largest output the kernel's shape model may plan (<c>Limits:MaxOutputBytes</c>).</param>
    public static async Task<CheckResult> CheckAsync(IReadOnlyList<SubmitJobRequest?> entries, bool isArray, StorageClient storage, TensorHeaders headers,
        long maxOutputBytes, CancellationToken ct)
    {
        var specs = new JobSpec[entries.Count];
        var errors = new Dictionary<string, string[]>();
        int? firstInvalid = null;
        (int Index, string Slug, string Error)? firstKernelError = null;
        for (var i = 0; i < entries.Count; i++)
        {
            var prefix = isArray ? $"jobs[{i}]" : "";
            if (entries[i] is not { } entry)
            {
                errors[prefix] = ["each entry is a job: what POST /v1/jobs takes"];
                firstInvalid ??= i;
                continue;
            }
            var entryErrors = new Dictionary<string, string[]>();
            var (spec, kernelError) = JobsApi.Validate(entry, entryErrors);
            if (entryErrors.Count > 0)
            {
                firstInvalid ??= i;
                // A batch of thousands of bad entries answers with the first hundred's messages, not megabytes.
                if (errors.Count < 100)
                {
                    foreach (var (key, value) in entryErrors)
                        errors[isArray ? $"{prefix}.{key}" : key] = value;
                }
                continue;
            }
            if (kernelError is not null)
                firstKernelError ??= (i, KernelCatalog.IsKnown(entry.Kernel!) ? "invalid-job" : "unknown-kernel", kernelError);
            specs[i] = spec!;
        }
        if (firstInvalid is { } invalid)
            return new(null, Problems.Validation(errors, isArray ? $"entry {invalid} of the batch is not valid; nothing was submitted" : "the job is not valid",
                Index(isArray, invalid)), null);
        if (firstKernelError is { } bad)
            return Refuse(Problems.Create(StatusCodes.Status400BadRequest, bad.Slug, "The job does not fit its kernel", Entry(isArray, bad.Index) + bad.Error,
                Index(isArray, bad.Index)));

        // Know each input's .npy header now, so a missing blob or a shape mismatch is answered here rather than as a
        // failed job later. Each distinct CID is read once; headers already read come from memory. The first blob found
        // missing stops the reads: the array is refused anyway, and an array of thousands of CIDs nobody pinned must
        // not turn one request into thousands of requests to storage.
        var read = new ConcurrentDictionary<Cid, TensorHeaders.Header?>();
        using var missingFound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            await Parallel.ForEachAsync(specs.SelectMany(s => s.Inputs.Values).Distinct(),
                new ParallelOptions { MaxDegreeOfParallelism = HeaderReadsInParallel, CancellationToken = missingFound.Token },
                async (cid, token) =>
                {
                    var header = await headers.ReadAsync(storage, cid, token);
                    read[cid] = header;
                    if (header is null)
                        await missingFound.CancelAsync();
                });
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // A blob is missing: the entries below find it.
        }

        var jobs = new CheckedJob[entries.Count];
        for (var i = 0; i < specs.Length; i++)
        {
            var spec = specs[i];
            // Inputs not read because a missing blob stopped the reads: unless this entry names a missing blob itself,
            // another entry does and refuses the array.
            var unread = spec.Inputs.Values.Any(cid => !read.ContainsKey(cid));
            if (unread && !spec.Inputs.Values.Any(cid => read.TryGetValue(cid, out var known) && known is null))
                continue;
            var infos = new Dictionary<string, TensorInfo>();
            long inputBytes = 0;
            foreach (var (name, cid) in spec.Inputs)
            {
                if (!read.TryGetValue(cid, out var header))
                    continue; // unread, and a missing one of this entry's comes below
                if (header is null)
                    return Refuse(Problems.Create(StatusCodes.Status422UnprocessableEntity, "input-not-found", "Input blob not found",
                        $"{Entry(isArray, i)}input '{name}' refers to {cid}, which is not pinned; upload it with POST /v1/blobs first", Index(isArray, i)));
                inputBytes += header.TotalSize;
                if (header.Info is null)
                    return Refuse(Problems.Create(StatusCodes.Status422UnprocessableEntity, "input-invalid", "Input is not a valid tensor",
                        $"{Entry(isArray, i)}input '{name}' ({cid}) is not a usable .npy file: {header.NpyError}", Index(isArray, i)));
                infos[name] = header.Info;
            }
            var plan = KernelCatalog.Plan(spec.Kernel, infos, spec.Params, out var planError);
            if (planError is not null)
                return Refuse(Problems.Create(StatusCodes.Status422UnprocessableEntity, "input-invalid", "Inputs do not fit the kernel", Entry(isArray, i) + planError,
                    Index(isArray, i)));
            // A degenerate shape (matmul [m,1]x[1,n]) plans a huge output for little work, so little pay: refused by
            // its size, which must also fit one pinned blob.
            if (plan.Outputs.FirstOrDefault(o => o.Value.Bytes > maxOutputBytes) is { Key: not null } huge)
                return Refuse(Problems.Create(StatusCodes.Status422UnprocessableEntity, "output-too-large", "Output too large",
                    $"{Entry(isArray, i)}output '{huge.Key}' would be {huge.Value.Describe()}, {huge.Value.Bytes:N0} bytes; a job's output may be at most {maxOutputBytes:N0} bytes",
                    Index(isArray, i)));
            jobs[i] = new CheckedJob(JobId.New(), spec, plan.Gflop, inputBytes, plan.OutputBytes);
        }
        if (missingFound.IsCancellationRequested)
            throw new InvalidOperationException("a missing input stopped the header reads but no entry was refused for it");
        return new(jobs, null, null);
    }

    /// <summary>
    /// Writes the checked jobs in the caller's transaction: the read model rows, each job's "pending" event and its
    /// JobSubmitted, three statements whatever the count. With <paramref name="batchId"/> each job records its batch
    /// and its place in it.
    /// </summary>
    public static Task WriteAsync(NpgsqlTransaction tx, MessageOutbox outbox, AccountId client, string? batchId, IReadOnlyList<CheckedJob> jobs,
        DateTimeOffset now, CancellationToken ct) =>
        WriteAsync(tx, outbox, batchId, [.. jobs.Select(j => new ClientJob(client, j))], now, ct);

    /// <summary>
    /// The time to write as a job's creation time: now, cut to the microsecond Postgres keeps, so an answer built
    /// from it shows what a later read of the job shows.
    /// </summary>
    public static DateTimeOffset CreationTime(TimeProvider clock)
    {
        var now = clock.GetUtcNow();
        return now.AddTicks(-(now.Ticks % 10));
    }

    /// <summary>A checked job and the client who submitted it.</summary>
    public sealed record ClientJob(AccountId Client, CheckedJob Job);

    /// <summary>
    /// The same three statements for jobs of several clients: the single submissions a group commit writes together
    /// (<see cref="SubmissionGroupCommit"/>).
    /// </summary>
    public static async Task WriteAsync(NpgsqlTransaction tx, MessageOutbox outbox, string? batchId, IReadOnlyList<ClientJob> jobs, DateTimeOffset now,
        CancellationToken ct)
    {
        var ids = jobs.Select(j => j.Job.Id.Value).ToArray();
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into jobs (id, client_account_id, kernel, spec, status, status_rank, created_at, updated_at, batch_id, batch_index)
            select j.id, j.client, j.kernel, j.spec::jsonb, 'pending', 0, @now, @now, @batchId, case when @batchId::text is null then null else j.ord - 1 end
            from unnest(@ids, @clients, @kernels, @specs) with ordinality as j (id, client, kernel, spec, ord)
            """,
            new
            {
                now,
                batchId,
                ids,
                clients = jobs.Select(j => j.Client.Value).ToArray(),
                kernels = jobs.Select(j => j.Job.Spec.Kernel).ToArray(),
                specs = jobs.Select(j => JsonSerializer.Serialize(j.Job.Spec, PlatformJson.Options)).ToArray(),
            }, tx, cancellationToken: ct));
        await JobEventLog.AppendPendingAsync(tx, ids, now, ct);
        await outbox.EnqueueManyAsync(tx, jobs.Select(j => new JobSubmitted
        {
            JobId = j.Job.Id,
            ClientAccountId = j.Client,
            Spec = j.Job.Spec,
            EstimatedGflop = j.Job.Gflop,
            InputBytes = j.Job.InputBytes,
            OutputBytes = j.Job.OutputBytes,
            OccurredAt = now,
        }).ToList(), ct: ct);
    }

    private static CheckResult Refuse(ProblemHttpResult problem) => new(null, null, problem);

    private static string Entry(bool isArray, int index) => isArray ? $"entry {index}: " : "";

    private static Dictionary<string, object?>? Index(bool isArray, int index) => isArray ? new() { ["index"] = index } : null;
}
