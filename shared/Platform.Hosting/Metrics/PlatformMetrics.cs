using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace Platform.Hosting.Metrics;

/// <summary>
/// Metrics: every service and node answers <c>GET /metrics</c> in Prometheus' text format with the platform's own
/// instruments (<see cref="Meter"/>: counters and histograms recorded where things happen, and gauges sampled from
/// the service's database, <see cref="DatabaseGauges"/>), MassTransit's, ASP.NET Core's, HttpClient's and Npgsql's,
/// and the .NET runtime's. Nothing is pushed anywhere: a Prometheus the owner runs scrapes it.
/// </summary>
public static class PlatformMetrics
{
    /// <summary>The platform's own instruments, in every process.</summary>
    public static readonly Meter Meter = new("Platform");

    public static IServiceCollection AddPlatformMetrics(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(MetricsOptions.SectionName).Get<MetricsOptions>() ?? new MetricsOptions();
        services.AddOptions<MetricsOptions>().BindConfiguration(MetricsOptions.SectionName);
        if (!options.Enabled)
            return services;
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(Meter.Name, "MassTransit", "Npgsql", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Net.Http")
            .AddRuntimeInstrumentation()
            // Scrapes within a second share one collection: the gateway's /metrics is public, and each request must
            // not make the process collect every instrument again.
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 1000));
        services.AddHostedService<DatabaseGauges>();
        return services;
    }

    /// <summary>
    /// A gauge sampled from the service's database: <paramref name="sql"/> returns a row per series, text columns as
    /// labels and a <c>value</c> column (<see cref="DatabaseGauges"/>). Kept cheap: it runs every sample interval.
    /// </summary>
    public static IServiceCollection AddDatabaseGauge(this IServiceCollection services, string name, string unit, string description, string sql) =>
        services.AddSingleton(new DatabaseGauge(name, unit, description, sql));

    /// <summary>Serves <c>/metrics</c> (unless <c>Metrics:Enabled</c> is false).</summary>
    public static WebApplication MapPlatformMetrics(this WebApplication app)
    {
        if (app.Configuration.GetSection(MetricsOptions.SectionName).Get<MetricsOptions>() is not { Enabled: false })
            app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}

/// <summary>Configuration section <c>Metrics</c>.</summary>
public sealed class MetricsOptions
{
    public const string SectionName = "Metrics";

    /// <summary>Off: no <c>/metrics</c> and no sampling.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the gauges read from the database are sampled (<see cref="DatabaseGauges"/>).</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(10);
}
