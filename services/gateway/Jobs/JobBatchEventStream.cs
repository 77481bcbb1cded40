using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Api;
using Platform.Gateway.Limits;

namespace Platform.Gateway.Jobs;

/// <summary>
/// GET /v1/batches/{id}/events: every status change of every job of a batch as server-sent events, each job's in the
/// order they happened, then <c>event: done</c> with the batch once every job has ended. Each change is an
/// <c>event: status</c> (the single-job stream's data: job id and version included) whose <c>id</c> is its place in
/// the gateway's log; a client that reconnects with <c>Last-Event-ID</c> misses nothing, and may see a few changes
/// again, which it knows by (jobId, version).
/// </summary>
/// <remarks>
/// The stream sleeps until the read model notifies a change of one of the batch's jobs (<see cref="JobChangeSignal"/>),
/// reading the log every 5 s without one. The log is read by the time each change was recorded, not by its number: numbers are handed out before commit,
/// so a change may become visible after a higher-numbered one. Each poll therefore reads back <see cref="Lag"/> and
/// drops what it sent already (the last version sent per job), and a job's change that arrives ahead of its
/// predecessor waits for it (briefly), as in the single-job stream.
/// </remarks>
public static class JobBatchEventStream
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan Lag = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan GapWait = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan FinishCheck = TimeSpan.FromSeconds(2);

    internal static async Task<IResult> Stream(string id, HttpContext http, NpgsqlDataSource db, IOptions<JsonOptions> json, EventStreamSlots slots,
        JobChangeSignal signal, TimeProvider clock, CancellationToken ct)
    {
        var batch = await JobBatchesApi.LoadAsync(db, id, JobBatchesApi.OwnerFilter(http), ct);
        if (batch is null)
            return JobBatchesApi.NotFound(id);
        var (slot, refusal) = slots.TryTake(http);
        if (refusal is not null)
            return refusal;
        using var streamSlot = slot;
        var resumeAfter = long.TryParse(http.Request.Headers["Last-Event-ID"], NumberStyles.None, CultureInfo.InvariantCulture, out var resumed) ? resumed : (long?)null;

        await JobEventStream.StartAsync(http, ct);
        var options = json.Value.SerializerOptions;

        // The last version sent of each job, and the jobs whose terminal change was sent.
        var last = new Dictionary<string, int>();
        var ended = new HashSet<string>();
        var heldSince = new Dictionary<string, DateTimeOffset>();
        DateTime? since = null;
        var lastWrite = clock.GetUtcNow();
        var lastFinishCheck = DateTimeOffset.MinValue;
        DateTimeOffset? allEndedSince = null;
        DateTimeOffset? loggedEndSince = null;
        var changed = Task.CompletedTask;
        try
        {
            await using (var connection = await db.OpenConnectionAsync(ct))
            {
                if (resumeAfter is { } after)
                {
                    // Resuming: what was recorded well before the last change the client saw, it has; the rest comes again.
                    since = await connection.ExecuteScalarAsync<DateTime?>(new CommandDefinition(
                        "select recorded_at - @Lag from job_events where seq = @after", new { after, Lag }, cancellationToken: ct));
                    if (since is not null)
                    {
                        foreach (var row in await connection.QueryAsync<JobEventLog.Row>(new CommandDefinition(
                            $"select {JobEventLog.Columns} from job_events e join jobs j on j.id = e.job_id where j.batch_id = @id and e.recorded_at < @since",
                            new { id, since }, cancellationToken: ct)))
                            Seen(row);
                    }
                }
            }

            while (!ct.IsCancellationRequested)
            {
                var sentEnd = false;
                changed = signal.Watch(id); // before the reads: a change committed during them still wakes the next wait
                await using (var connection = await db.OpenConnectionAsync(ct))
                {
                    var pollStarted = await connection.ExecuteScalarAsync<DateTime>(new CommandDefinition("select clock_timestamp()", cancellationToken: ct));
                    // The first read takes the batch's whole log by its jobs; later ones only what was recorded since.
                    var rows = await connection.QueryAsync<JobEventLog.Row>(new CommandDefinition(
                        since is null
                            ? $"select {JobEventLog.Columns} from job_events e join jobs j on j.id = e.job_id where j.batch_id = @id order by e.seq"
                            : $"select {JobEventLog.Columns} from job_events e join jobs j on j.id = e.job_id where e.recorded_at >= @since and j.batch_id = @id order by e.seq",
                        new { id, since }, cancellationToken: ct));
                    foreach (var row in rows)
                    {
                        var previous = last.TryGetValue(row.JobId, out var v) ? v : -1;
                        if (row.Version <= previous)
                            continue;
                        if (row.Version != previous + 1 && row.Version != JobEventLog.RejectedVersion)
                        {
                            var waiting = heldSince.TryGetValue(row.JobId, out var held) ? held : heldSince[row.JobId] = clock.GetUtcNow();
                            if (clock.GetUtcNow() - waiting < GapWait)
                                continue;
                        }
                        heldSince.Remove(row.JobId);
                        await JobEventStream.WriteAsync(http, "status", row.Seq, JsonSerializer.Serialize(row.ToEvent(), options), ct);
                        lastWrite = clock.GetUtcNow();
                        sentEnd |= Seen(row);
                    }
                    since = DateTime.SpecifyKind(pollStarted, DateTimeKind.Utc) - Lag;

                    if (ended.Count >= batch.Total)
                    {
                        // The log may show a job's end before the view does (a completion is recorded from JobCompleted,
                        // which can arrive after the status change): done waits for the view to agree, briefly.
                        loggedEndSince ??= clock.GetUtcNow();
                        var view = (await JobBatchesApi.LoadAsync(db, id, null, ct))!;
                        if (view.Finished || clock.GetUtcNow() - loggedEndSince > GapWait)
                            return await DoneAsync(http, view, options, ct);
                    }
                    // A job may end without a numbered change (a scheduler that sends none): the batch is done once every
                    // job has ended in the read model for longer than a gap may take to fill.
                    if (sentEnd || clock.GetUtcNow() - lastFinishCheck > FinishCheck)
                    {
                        lastFinishCheck = clock.GetUtcNow();
                        var live = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                            "select count(*) from jobs where batch_id = @id and status_rank < 10", new { id }, cancellationToken: ct));
                        allEndedSince = live == 0 ? allEndedSince ?? clock.GetUtcNow() : null;
                        if (allEndedSince is { } all && clock.GetUtcNow() - all > GapWait)
                            return await DoneAsync(http, (await JobBatchesApi.LoadAsync(db, id, null, ct))!, options, ct);
                    }
                }
                lastWrite = await JobEventStream.KeepAliveAsync(http, lastWrite, clock, ct);
                try
                {
                    // Woken by a change of any of the batch's jobs; soon while a change waits for its predecessor or the
                    // batch waits to be declared done, else after the fallback in case a notification was lost.
                    await changed.WaitAsync(heldSince.Count > 0 || allEndedSince is not null || loggedEndSince is not null ? PollInterval : JobEventStream.Fallback, clock, ct);
                }
                catch (TimeoutException)
                {
                    // No notification: read the log anyway.
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away.
        }
        finally
        {
            signal.Forget(id, changed);
        }
        return Results.Empty;

        // Records a change as sent; true when it ended its job.
        bool Seen(JobEventLog.Row row)
        {
            last[row.JobId] = row.Version;
            return JobStatuses.IsTerminal(row.Status) && ended.Add(row.JobId);
        }
    }

    private static async Task<IResult> DoneAsync(HttpContext http, JobBatchView view, JsonSerializerOptions options, CancellationToken ct)
    {
        await JobEventStream.WriteAsync(http, "done", null, JsonSerializer.Serialize(view, options), ct);
        return Results.Empty;
    }
}
