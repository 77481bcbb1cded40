using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Platform.Hosting.Tracing;

/// <summary>
/// Traces: every service and node records spans for its HTTP requests and calls, its database commands, MassTransit's
/// sends and consumes and the platform's own steps (<see cref="Source"/>), and passes the W3C trace context on with
/// every HTTP call and every message, so that one job is one trace from submission to payout. Spans are written to
/// the service's log as JSON lines (<see cref="SpanLog"/>: <c>./platform trace JOB_ID</c> rebuilds a job's timeline
/// from them, with no collector), and also exported by OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
/// </summary>
public static class PlatformTracing
{
    /// <summary>The platform's own spans: a job's step inside a batch (<see cref="JobTraces"/>), an outbox send.</summary>
    public static readonly ActivitySource Source = new("Platform");

    /// <summary>The tag that names the job a span is about.</summary>
    public const string JobIdTag = "job.id";

    public static IServiceCollection AddPlatformTracing(this IServiceCollection services, IConfiguration configuration, string service)
    {
        var options = configuration.GetSection(TracingOptions.SectionName).Get<TracingOptions>() ?? new TracingOptions();
        services.AddOptions<TracingOptions>().BindConfiguration(TracingOptions.SectionName);
        if (!options.Enabled)
            return services;
        var otlp = configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        services.AddOpenTelemetry()
            .WithTracing(tracing =>
            {
                tracing
                    .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(options.SampleRatio)))
                    .AddSource(Source.Name, "MassTransit")
                    // Health probes every second would bury the jobs' spans.
                    .AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments("/health", StringComparison.Ordinal))
                    .AddHttpClientInstrumentation()
                    // Room for a busy second's spans: a full queue drops spans, and the job's timeline would have gaps.
                    .AddProcessor(sp => new BatchActivityExportProcessor(
                        new SpanLog(sp.GetRequiredService<ILoggerFactory>().CreateLogger(SpanLog.Category), service, options.LogDatabaseSpans),
                        maxQueueSize: 65_536, scheduledDelayMilliseconds: (int)options.LogDelay.TotalMilliseconds, maxExportBatchSize: 4_096));
                // Many per job: recorded only when someone will read them.
                if (options.LogDatabaseSpans || !string.IsNullOrWhiteSpace(otlp))
                    tracing.AddNpgsql();
                if (!string.IsNullOrWhiteSpace(otlp))
                    tracing.AddOtlpExporter();
            });
        return services;
    }
}

/// <summary>Configuration section <c>Tracing</c>.</summary>
public sealed class TracingOptions
{
    public const string SectionName = "Tracing";

    /// <summary>Off: no spans are recorded and nothing is written; the trace context still crosses HTTP hops (.NET's own).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The share of new traces recorded (a trace begun elsewhere follows its parent's choice). 1 records every job;
    /// a busy deployment may keep a sample.
    /// </summary>
    public double SampleRatio { get; set; } = 1.0;

    /// <summary>Whether the log gets a line for every database command too (OTLP always gets them): many per job.</summary>
    public bool LogDatabaseSpans { get; set; }

    /// <summary>How long finished spans wait to be written, in batches, off the requests' and consumers' path.</summary>
    public TimeSpan LogDelay { get; set; } = TimeSpan.FromSeconds(1);
}
