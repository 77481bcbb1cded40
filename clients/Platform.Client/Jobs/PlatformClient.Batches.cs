using System.Runtime.CompilerServices;
using System.Text.Json;
using Platform.Contracts.Api;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>
    /// Submits <paramref name="jobs"/> as one batch (1 to 10,000): all are created or, when any entry is bad, none,
    /// and the problem's <see cref="Problem.Index"/> names the first bad one. With <paramref name="idempotencyKey"/>
    /// a retried batch returns the first one instead of starting another.
    /// </summary>
    [ApiOperation("POST /v1/jobs:batch", Body = typeof(SubmitJobBatchRequest))]
    public Task<JobBatchView> SubmitJobsAsync(IReadOnlyList<SubmitJobRequest> jobs, string? idempotencyKey = null, CancellationToken ct = default) =>
        PostAsync<JobBatchView>("v1/jobs:batch", new SubmitJobBatchRequest { Jobs = jobs }, ct, idempotencyKey);

    /// <summary>The batch with its jobs' current counts by status.</summary>
    [ApiOperation("GET /v1/batches/{id}")]
    public Task<JobBatchView> GetBatchAsync(string batchId, CancellationToken ct = default) => GetAsync<JobBatchView>($"v1/batches/{Escape(batchId)}", ct);

    /// <summary>Asks every job of the batch that has not finished to cancel (their escrow is refunded).</summary>
    [ApiOperation("POST /v1/batches/{id}/cancel")]
    public async Task<JobBatchView> CancelBatchAsync(string batchId, CancellationToken ct = default)
    {
        using var response = await PostAsync($"v1/batches/{Escape(batchId)}/cancel", null, null, ct);
        return await ReadAsync<JobBatchView>(response, ct);
    }

    /// <summary>
    /// Every status change of every job of the batch, from its event stream, ending when the gateway says the batch
    /// is done. A dropped stream is resumed (Last-Event-ID); the changes a resumed stream repeats are recognised by
    /// job and version and left out. A gateway without the batch stream (404), or one that keeps dropping it, is
    /// polled every <see cref="PollInterval"/> until the batch is finished instead, and then no change is reported:
    /// the batch's counts (<see cref="GetBatchAsync"/>) say how it ended either way.
    /// </summary>
    [ApiOperation("GET /v1/batches/{id}/events")]
    public async IAsyncEnumerable<JobStatusEvent> WatchBatchAsync(string batchId, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var seen = new HashSet<(string JobId, int Version)>();
        string? lastId = null;
        var idleResumes = 0;
        while (idleResumes < MaxIdleResumes)
        {
            using var response = await OpenEventStreamAsync($"v1/batches/{Escape(batchId)}/events", lastId, ct);
            if (response is null)
                break; // no batch stream here (or no such batch, which the first poll reports)

            var fresh = false;
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            await foreach (var (frame, id) in JobEventStream.ReadAsync<BatchFrame>(body, ParseBatchFrame, ct))
            {
                lastId = id ?? lastId;
                if (frame.Status is not { } status)
                    yield break; // done: every job is terminal
                if (status.Version is { } version && !seen.Add((status.JobId, version)))
                    continue;
                fresh = true;
                yield return status with { Sequence = SequenceOf(id) };
            }
            idleResumes = fresh ? 0 : idleResumes + 1;
            await Task.Delay(PollInterval, ct);
        }

        while (!(await GetBatchAsync(batchId, ct)).Finished)
            await Task.Delay(PollInterval, ct);
    }

    /// <summary>
    /// One event of a batch stream: a job's status change, or (<see cref="Status"/> null) <c>done</c>. Done's batch
    /// is not read: callers that want the final counts ask <see cref="GetBatchAsync"/>, which the polling path needs anyway.
    /// </summary>
    private sealed record BatchFrame(JobStatusEvent? Status);

    private static readonly BatchFrame Done = new(Status: null);

    private static BatchFrame? ParseBatchFrame(string type, ReadOnlySpan<byte> data) => type switch
    {
        "status" => JsonSerializer.Deserialize<JobStatusEvent>(data, Json) is { } status ? new BatchFrame(status) : null,
        "done" => Done,
        _ => null,
    };
}
