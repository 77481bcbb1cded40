using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Platform.Contracts.Api;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    // A stream that ends before a terminal status is resumed; this many resumes in a row that bring nothing
    // new mean the server keeps dropping it, and polling takes over.
    private const int MaxIdleResumes = 3;

    /// <summary>
    /// Submits a job (202: it is accepted, not yet funded or run). With <paramref name="idempotencyKey"/> a retried
    /// submission returns the first one's job instead of starting another.
    /// </summary>
    [ApiOperation("POST /v1/jobs")]
    public async Task<JobView> SubmitJobAsync(SubmitJobRequest request, string? idempotencyKey = null, CancellationToken ct = default) =>
        await PostAsync<JobView>("v1/jobs", request, ct, idempotencyKey);

    [ApiOperation("GET /v1/jobs/{id}")]
    public Task<JobView> GetJobAsync(string jobId, CancellationToken ct = default) => GetAsync<JobView>($"v1/jobs/{Escape(jobId)}", ct);

    /// <summary>One page of the account's jobs, newest first; pass <see cref="JobList.NextCursor"/> on for the next.</summary>
    [ApiOperation("GET /v1/jobs")]
    public Task<JobList> GetJobsPageAsync(string? status = null, int? limit = null, string? cursor = null, CancellationToken ct = default) =>
        GetAsync<JobList>("v1/jobs" + Query(("status", status), ("limit", limit?.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("cursor", cursor)), ct);

    /// <summary>Every job of the account, newest first, fetched a page at a time as the caller reads on.</summary>
    public async IAsyncEnumerable<JobView> ListJobsAsync(string? status = null, int pageSize = 50, [EnumeratorCancellation] CancellationToken ct = default)
    {
        string? cursor = null;
        do
        {
            var page = await GetJobsPageAsync(status, pageSize, cursor, ct);
            foreach (var job in page.Items)
                yield return job;
            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>
    /// Cancels the job: the answer is final, the job cancelled and its escrow refunded. A job that already finished
    /// answers 409 (job-finished).
    /// </summary>
    [ApiOperation("POST /v1/jobs/{id}/cancel")]
    public async Task<JobView> CancelJobAsync(string jobId, CancellationToken ct = default)
    {
        using var response = await PostAsync($"v1/jobs/{Escape(jobId)}/cancel", null, null, ct);
        return await ReadAsync<JobView>(response, ct);
    }

    /// <summary>
    /// The job's status changes and progress reports as they happen, from its event stream, ending after the
    /// terminal status. A dropped stream is resumed where it stopped (Last-Event-ID). A gateway without the event
    /// stream (404) is polled instead, every <see cref="PollInterval"/>, and the changes it shows are reported
    /// the same way.
    /// </summary>
    [ApiOperation("GET /v1/jobs/{id}/events")]
    public async IAsyncEnumerable<JobEvent> WatchAsync(string jobId, [EnumeratorCancellation] CancellationToken ct = default)
    {
        string? lastId = null;
        var idleResumes = 0;
        while (true)
        {
            using var response = await OpenEventStreamAsync($"v1/jobs/{Escape(jobId)}/events", lastId, ct);
            if (response is null)
                break; // no event stream here (or no such job, which the first poll reports)

            var fresh = false;
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            await foreach (var (e, id) in JobEventStream.ReadAsync(body, ct))
            {
                if (e is JobStatusEvent status)
                {
                    lastId = id ?? lastId;
                    fresh = true;
                    yield return status with { Sequence = SequenceOf(id) };
                    if (status.IsTerminal)
                        yield break;
                }
                else
                {
                    yield return e;
                }
            }
            idleResumes = fresh ? 0 : idleResumes + 1;
            if (idleResumes >= MaxIdleResumes)
                break;
            await Task.Delay(PollInterval, ct);
        }

        await foreach (var e in PollAsync(jobId, ct))
            yield return e;
    }

    /// <summary>
    /// GETs the event stream at <paramref name="path"/>, after event <paramref name="lastId"/> when resuming; null
    /// when the gateway answers 404 (no stream there, or nothing of that id: the caller's poll tells which) or 429
    /// (the account has as many streams open as it may: the caller polls instead of failing).
    /// </summary>
    private async Task<HttpResponseMessage?> OpenEventStreamAsync(string path, string? lastId, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastId is not null)
            request.Headers.Add("Last-Event-ID", lastId);
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        try
        {
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.TooManyRequests)
            {
                response.Dispose();
                return null;
            }
            await EnsureSuccessAsync(response, ct);
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private static long? SequenceOf(string? id) => long.TryParse(id, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>Reads the job every <see cref="PollInterval"/> and reports what changed as events.</summary>
    private async IAsyncEnumerable<JobEvent> PollAsync(string jobId, [EnumeratorCancellation] CancellationToken ct)
    {
        string? lastStatus = null;
        float? lastProgress = null;
        while (true)
        {
            var job = await GetJobAsync(jobId, ct);
            var attempt = job.Attempts.Count > 0 ? job.Attempts[^1] : null;
            if (job.Status != lastStatus)
            {
                lastStatus = job.Status;
                yield return new JobStatusEvent
                {
                    JobId = job.Id,
                    Status = job.Status,
                    AttemptId = attempt?.AttemptId,
                    WorkerId = attempt?.WorkerId,
                    AttemptStatus = attempt?.Status,
                    Reason = job.Error?.Reason,
                    Detail = job.Error?.Detail,
                    OccurredAt = job.CompletedAt ?? DateTimeOffset.UtcNow,
                };
            }
            if (job.IsFinished)
                yield break;
            if (job.Progress is { } progress && progress != lastProgress)
            {
                lastProgress = progress;
                yield return new JobProgressEvent { JobId = job.Id, AttemptId = attempt?.AttemptId, Fraction = progress };
            }
            await Task.Delay(PollInterval, ct);
        }
    }

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var set = parameters.Where(p => p.Value is not null).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return set.Count == 0 ? "" : "?" + string.Join('&', set);
    }
}
