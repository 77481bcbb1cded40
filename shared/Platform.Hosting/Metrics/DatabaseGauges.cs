using System.Diagnostics.Metrics;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.Hosting.Metrics;

/// <summary>
/// A gauge read from the service's database: <paramref name="Sql"/> returns one row per series, its text columns the
/// series' labels and a column named <c>value</c> the number. Registered with <see cref="PlatformMetrics.AddDatabaseGauge"/>.
/// </summary>
public sealed record DatabaseGauge(string Name, string Unit, string Description, string Sql);

/// <summary>
/// Samples the service's <see cref="DatabaseGauge"/>s every <see cref="MetricsOptions.SampleInterval"/> and serves the
/// last sample: a scrape never waits for the database, and however often Prometheus scrapes, the database is asked
/// once an interval. A query that fails keeps its last sample and is logged; the others go on.
/// </summary>
public sealed class DatabaseGauges(IEnumerable<DatabaseGauge> gauges, IServiceProvider services, IOptions<MetricsOptions> options,
    IMeterFactory meters, ILogger<DatabaseGauges> logger) : BackgroundService
{
    // The host's own meter (named as PlatformMetrics.Meter): its gauges go with the host, not with the process (a test
    // process runs many hosts, and a static meter would keep every stopped host's gauges reporting).
    private readonly Meter _meter = meters.Create(PlatformMetrics.Meter.Name);

    private readonly Dictionary<string, Measurement<double>[]> _latest = [];
    private readonly Lock _lock = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var all = gauges.ToList();
        // No database (a node), or nothing to sample.
        if (all.Count == 0 || services.GetService<NpgsqlDataSource>() is not { } db)
            return;
        var database = services.GetRequiredService<Database.DatabaseState>();
        foreach (var gauge in all)
        {
            _latest[gauge.Name] = [];
            _meter.CreateObservableGauge(gauge.Name, () => Latest(gauge.Name), gauge.Unit, gauge.Description);
        }
        using var timer = new PeriodicTimer(options.Value.SampleInterval);
        do
        {
            if (!database.Migrated)
                continue;
            foreach (var gauge in all)
            {
                try
                {
                    await using var connection = await db.OpenConnectionAsync(stoppingToken);
                    // A sample that takes longer than this is not worth the load it puts beside the real work.
                    var rows = await connection.QueryAsync(new CommandDefinition(gauge.Sql, commandTimeout: 5, cancellationToken: stoppingToken));
                    var sample = rows.Cast<IDictionary<string, object?>>().Select(Measure).ToArray();
                    lock (_lock)
                        _latest[gauge.Name] = sample;
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    logger.LogWarning(ex, "Metric {Gauge} could not be sampled; it keeps its last value", gauge.Name);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private static Measurement<double> Measure(IDictionary<string, object?> row)
    {
        var value = row.TryGetValue("value", out var v) && v is not null ? Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture) : 0;
        var tags = row.Where(c => c.Key != "value").Select(c => new KeyValuePair<string, object?>(c.Key, c.Value?.ToString() ?? "")).ToArray();
        return new Measurement<double>(value, tags);
    }

    private Measurement<double>[] Latest(string name)
    {
        lock (_lock)
            return _latest[name];
    }
}
