using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Platform.Contracts.Api;

namespace Platform.Client;

/// <summary>Something that happened to a job, as GET /v1/jobs/{id}/events streams it.</summary>
public abstract record JobEvent
{
    public required string JobId { get; init; }
}

/// <summary>
/// <c>event: status</c>: the job changed status; <see cref="Sequence"/> is the event's id (within the job on a job's
/// stream, within the batch on a batch's stream).
/// </summary>
public sealed record JobStatusEvent : JobEvent
{
    public required string Status { get; init; }
    public string? AttemptId { get; init; }
    public string? WorkerId { get; init; }
    public string? AttemptStatus { get; init; }
    public string? Reason { get; init; }
    public string? Detail { get; init; }
    /// <summary>The reason as a sentence for people; set whenever <see cref="Reason"/> is, and on every terminal status.</summary>
    public string? Message { get; init; }
    public DateTimeOffset OccurredAt { get; init; }
    /// <summary>
    /// The job's version after this change: with <see cref="JobEvent.JobId"/> it names the change, so a resumed
    /// batch stream's repeats are recognised. Null when the event was made up from polling the job.
    /// </summary>
    public int? Version { get; init; }
    /// <summary>The SSE id; null when the event was made up from polling the job.</summary>
    public long? Sequence { get; init; }

    public bool IsTerminal => JobStatuses.IsTerminal(Status);
}

/// <summary><c>event: progress</c>: the running attempt reports the fraction of the kernel done (0..1).</summary>
public sealed record JobProgressEvent : JobEvent
{
    public string? AttemptId { get; init; }
    public double Fraction { get; init; }
}

/// <summary>Reads the job event stream (text/event-stream) into <see cref="JobEvent"/>s.</summary>
public static class JobEventStream
{
    /// <summary>
    /// The events in <paramref name="stream"/>, in order, with the SSE id each carried (null for progress).
    /// Comments (keep-alives) are skipped; so are event types this client does not know, so a newer server
    /// may add some.
    /// </summary>
    public static IAsyncEnumerable<(JobEvent Event, string? Id)> ReadAsync(Stream stream, CancellationToken ct = default) =>
        ReadAsync<JobEvent>(stream, Parse, ct);

    /// <summary>
    /// The items <paramref name="parse"/> makes of the stream's events, with their SSE ids; an event it makes
    /// nothing of (null) is skipped. The job and the batch streams share this, and so their framing rules.
    /// </summary>
    internal static async IAsyncEnumerable<(T Item, string? Id)> ReadAsync<T>(Stream stream, SseItemParser<T?> parse, [EnumeratorCancellation] CancellationToken ct)
        where T : class
    {
        var parser = SseParser.Create(stream, parse);
        await foreach (var item in parser.EnumerateAsync(ct))
        {
            if (item.Data is { } e)
                yield return (e, item.EventId);
        }
    }

    private static JobEvent? Parse(string type, ReadOnlySpan<byte> data) => type switch
    {
        "status" => JsonSerializer.Deserialize<JobStatusEvent>(data, PlatformClient.Json),
        "progress" => JsonSerializer.Deserialize<JobProgressEvent>(data, PlatformClient.Json),
        _ => null,
    };
}
