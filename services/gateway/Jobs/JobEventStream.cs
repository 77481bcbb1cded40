using System.Globalization;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Gateway.Auth;
using Platform.Gateway.Limits;
using Platform.Hosting.Http;

namespace Platform.Gateway.Jobs;

/// <summary>
/// GET /v1/jobs/{id}/events: every status change of a job as server-sent events, in the order they happened,
/// until it ends. Each change is an <c>event: status</c> whose <c>id</c> is its version, so a client that
/// reconnects with <c>Last-Event-ID</c> misses nothing; progress of the running attempt comes as
/// <c>event: progress</c>. The log is read when the read model signals a change of the job (<see cref="JobChangeSignal"/>),
/// so an idle stream reads nothing: a change may reach this instance's database before or after its predecessor, so a
/// gap in the versions is waited for (briefly) rather than skipped. Streams are counted per account and in all
/// (<see cref="EventStreamSlots"/>), and a stream resumed past the job's end ends at once.
/// </summary>
public static class JobEventStream
{
    // Woken by the view's notifications (JobChangeSignal); the log is read again after Fallback without one, in case a
    // notification was lost, and every PollInterval while a gap in the versions is being waited out.
    internal static readonly TimeSpan Fallback = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan GapWait = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    private sealed class RunningAttempt
    {
        public string AttemptId { get; init; } = "";
        public float Fraction { get; init; }
    }

    internal static async Task<IResult> Stream(string id, HttpContext http, NpgsqlDataSource db, IOptions<JsonOptions> json, EventStreamSlots slots,
        JobChangeSignal signal, TimeProvider clock, CancellationToken ct)
    {
        var resumeFrom = http.Request.Headers["Last-Event-ID"].ToString();
        var last = -1;
        // The ids this stream sends are a job's versions: 0 up, and the rejection's. No other id can be resumed from.
        if (resumeFrom.Length > 0 && (!int.TryParse(resumeFrom, NumberStyles.None, CultureInfo.InvariantCulture, out last) || last > JobEventLog.RejectedVersion))
        {
            return Problems.BadRequest("invalid-last-event-id", "Invalid Last-Event-ID",
                $"a job's event ids are its versions, 0 to {JobEventLog.RejectedVersion}; send the id of the last event received, or none to start over");
        }
        var view = JobId.TryParse(id, null, out _) ? await JobViewStore.LoadAsync(db, id, ct, http.User.IsAdmin() ? null : http.User.AccountOf()) : null;
        if (view is null)
            return Problems.NotFound("job-not-found", "Job not found", $"no job '{id}' for this account");
        var (slot, refusal) = slots.TryTake(http);
        if (refusal is not null)
            return refusal;
        using var streamSlot = slot;

        await StartAsync(http, ct);
        var options = json.Value.SerializerOptions;

        DateTimeOffset? gapSince = null;
        var lastWrite = clock.GetUtcNow();
        (string AttemptId, float Fraction)? progress = null;
        var changed = Task.CompletedTask;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                changed = signal.Watch(id); // before the reads: a change committed during them still wakes the next wait
                await using (var connection = await db.OpenConnectionAsync(ct))
                {
                    foreach (var change in await JobEventLog.AfterAsync(connection, id, last, ct))
                    {
                        // The job ended at or before the change the client resumed from: it has seen everything.
                        if (change.Version <= last)
                            return Results.Empty;
                        if (change.Version != last + 1 && change.Version != JobEventLog.RejectedVersion)
                        {
                            gapSince ??= clock.GetUtcNow();
                            if (clock.GetUtcNow() - gapSince < GapWait)
                                break;
                        }
                        gapSince = null;
                        await WriteAsync(http, "status", change.Version, JsonSerializer.Serialize(change, options), ct);
                        last = change.Version;
                        lastWrite = clock.GetUtcNow();
                        if (JobStatuses.IsTerminal(change.Status))
                            return Results.Empty;
                    }
                    var running = await connection.QuerySingleOrDefaultAsync<RunningAttempt>(new CommandDefinition(
                        "select attempt_id as AttemptId, progress as Fraction from job_attempts where job_id = @id and status = 'running' and progress is not null order by updated_at desc limit 1",
                        new { id }, cancellationToken: ct));
                    if (running is not null && progress != (running.AttemptId, running.Fraction))
                    {
                        progress = (running.AttemptId, running.Fraction);
                        await WriteAsync(http, "progress", null, JsonSerializer.Serialize(new JobProgress(id, running.AttemptId, running.Fraction), options), ct);
                        lastWrite = clock.GetUtcNow();
                    }
                }
                lastWrite = await KeepAliveAsync(http, lastWrite, clock, ct);
                try
                {
                    await changed.WaitAsync(gapSince is null ? Fallback : PollInterval, clock, ct);
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
    }

    /// <summary>Starts a server-sent event stream: nothing buffered on the way, by us or a proxy.</summary>
    internal static async Task StartAsync(HttpContext http, CancellationToken ct)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await http.Response.StartAsync(ct);
    }

    /// <summary>A comment after <see cref="KeepAlive"/> of silence, so proxies keep the stream open; when it last wrote.</summary>
    internal static async Task<DateTimeOffset> KeepAliveAsync(HttpContext http, DateTimeOffset lastWrite, TimeProvider clock, CancellationToken ct)
    {
        if (clock.GetUtcNow() - lastWrite <= KeepAlive)
            return lastWrite;
        await http.Response.WriteAsync(": keep-alive\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
        return clock.GetUtcNow();
    }

    /// <summary>One server-sent event (with <paramref name="id"/> for Last-Event-ID), flushed at once.</summary>
    internal static async Task WriteAsync(HttpContext http, string type, long? id, string data, CancellationToken ct)
    {
        var frame = new StringBuilder();
        if (id is { } version)
            frame.Append("id: ").Append(version.ToString(CultureInfo.InvariantCulture)).Append('\n');
        frame.Append("event: ").Append(type).Append('\n').Append("data: ").Append(data).Append("\n\n");
        await http.Response.WriteAsync(frame.ToString(), ct);
        await http.Response.Body.FlushAsync(ct);
    }
}
