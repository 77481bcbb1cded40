using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace Platform.Hosting.Tracing;

/// <summary>
/// Writes finished spans to the service's log, one JSON line each under the category <see cref="Category"/>: trace,
/// span and parent ids, the service, the span's name and kind, its start (UTC) and duration, the job it is about and
/// whether it failed. A local stack needs no collector: <c>./platform trace JOB_ID</c> reads these lines.
/// </summary>
public sealed partial class SpanLog(ILogger logger, string service, bool databaseSpans) : BaseExporter<Activity>
{
    public const string Category = "Platform.Spans";

    [LoggerMessage(EventId = 1, EventName = "Span", Level = LogLevel.Information,
        Message = "span {TraceId} {SpanId} {ParentSpanId} {Service} {Name} {Kind} {Start} {DurationMs} {JobId} {Error}")]
    private static partial void Write(ILogger logger, string traceId, string spanId, string? parentSpanId, string service, string name, string kind,
        string start, double durationMs, string? jobId, string? error);

    public override ExportResult Export(in Batch<Activity> batch)
    {
        foreach (var span in batch)
        {
            if (!databaseSpans && span.Source.Name == "Npgsql")
                continue;
            var parent = span.ParentSpanId == default ? null : span.ParentSpanId.ToHexString();
            var error = span.Status == ActivityStatusCode.Error ? span.StatusDescription ?? "error" : null;
            Write(logger, span.TraceId.ToHexString(), span.SpanId.ToHexString(), parent, service, span.DisplayName, span.Kind.ToString(),
                span.StartTimeUtc.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", System.Globalization.CultureInfo.InvariantCulture),
                Math.Round(span.Duration.TotalMilliseconds, 3), span.GetTagItem(PlatformTracing.JobIdTag) as string, error);
        }
        return ExportResult.Success;
    }
}
