using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Every service's and the node's <c>/metrics</c> is Prometheus' text format, and the platform's own series move when a
/// job runs: submissions and submit-to-end times (gateway), placements and attempts (scheduler), the ledger (rewards),
/// blobs (storage), attempts, work and slots (the node).
/// </summary>
public sealed partial class MetricsTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    /// <summary>A scrape: each series (name and labels, as written) and its value.</summary>
    private sealed record Scrape(Dictionary<string, double> Series, HashSet<string> Names)
    {
        public double Sum(string name, string? label = null) =>
            Series.Where(s => s.Key == name || s.Key.StartsWith(name + "{", StringComparison.Ordinal))
                .Where(s => label is null || s.Key.Contains(label, StringComparison.Ordinal))
                .Sum(s => s.Value);
    }

    [Fact]
    public async Task Every_services_metrics_parse_and_the_platforms_series_move_when_a_job_runs()
    {
        const int seed = 2021;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var worker = await network.StartWorkerAsync(network.Operator.Key);
        // One process of each service (their logs are <service>-<n>.log) and the node.
        var targets = network.Services.ToDictionary(s => InstanceSuffix().Replace(Path.GetFileNameWithoutExtension(s.LogPath), ""), s => s.BaseUrl);
        Assert.Equal(["gateway", "rewards", "scheduler", "storage", "worker"], targets.Keys.Order(StringComparer.Ordinal));
        using var scraper = new HttpClient();

        var before = new Dictionary<string, Scrape>();
        foreach (var (name, url) in targets)
        {
            before[name] = await ScrapeAsync(scraper, url);
            output.WriteLine($"{name}: {before[name].Series.Count} series, {before[name].Names.Count(n => n.StartsWith("platform_", StringComparison.Ordinal))} of the platform's");
        }

        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        var job = await http.RunVectorAddAsync(random, 256);

        // Counters move at once; the gauges read from the databases every Metrics:SampleInterval (10 s).
        (string Service, string Name, string? Label, double AtLeast)[] moved =
        [
            ("gateway", "platform_jobs_submitted_total", "kernel=\"vector-add\"", 1),
            ("gateway", "platform_job_duration_seconds_count", "status=\"completed\"", 1),
            ("gateway", "http_server_request_duration_seconds_count", null, 1),
            ("scheduler", "platform_placements_total", "result=\"assigned\"", 1),
            ("scheduler", "platform_attempts_ended_total", "status=\"accepted\"", 1),
            ("rewards", "platform_ledger_credits_total", "kind=\"payout\"", 0.000001),
            ("rewards", "platform_ledger_credits_total", "kind=\"fee\"", 0.000001),
            ("storage", "platform_storage_blobs", null, 3),
            ("worker", "platform_node_attempts_total", "outcome=\"completed\"", 1),
            ("worker", "platform_node_gflop_total", null, 1e-9),
        ];
        var after = new Dictionary<string, Scrape>();
        foreach (var (service, name, label, atLeast) in moved)
        {
            var series = $"{service}'s {name}{(label is null ? "" : "{" + label + "}")}";
            var scrape = await Eventually.UntilAsync(() => ScrapeAsync(scraper, targets[service]),
                s => s.Sum(name, label) - before[service].Sum(name, label) >= atLeast, TimeSpan.FromSeconds(30), $"{series} to grow by {atLeast}");
            after[service] = scrape;
            output.WriteLine($"{series}: {before[service].Sum(name, label)} -> {scrape.Sum(name, label)}");
        }
        // The node's slots, the runtime's and MassTransit's series are there too.
        Assert.Equal(1, after["worker"].Sum("platform_node_slots"));
        Assert.All(after.Values, s => Assert.Contains(s.Names, n => n.StartsWith("dotnet_gc_", StringComparison.Ordinal)));
        Assert.All(after.Values, s => Assert.Contains(s.Names, n => n.StartsWith("messaging_", StringComparison.Ordinal)));
        foreach (var (service, scrape) in after)
            output.WriteLine($"{service}: {string.Join(' ', scrape.Names.Where(n => n.StartsWith("platform_", StringComparison.Ordinal)).Order(StringComparer.Ordinal))}");

        // Every metric the provisioned Grafana dashboard plots is one these processes serve (by its exact name), except
        // those that have no series until a job is live at scrape time (the live jobs, slots in use) or a worker has
        // enough speed samples.
        string[] needMoreData = ["platform_worker_slots_used", "platform_worker_gflops_per_second", "platform_scheduler_jobs"];
        var plotted = DashboardMetric().Matches(await File.ReadAllTextAsync(Path.Combine(RepoRoot.Find(), "deploy", "grafana", "dashboards", "platform.json")))
            .Select(m => HistogramPart().Replace(m.Value, "")).Distinct().ToList();
        output.WriteLine($"dashboard plots {string.Join(' ', plotted)}");
        Assert.NotEmpty(plotted);
        // The sampled gauges appear at their next sample after the job (Metrics:SampleInterval).
        var missing = await Eventually.UntilAsync(async () =>
            {
                var served = new HashSet<string>();
                foreach (var url in targets.Values)
                    served.UnionWith((await ScrapeAsync(scraper, url)).Names.Select(n => HistogramPart().Replace(n, "")));
                return plotted.Except(needMoreData).Where(name => !served.Contains(name)).ToList();
            }, m => m.Count == 0, TimeSpan.FromSeconds(30), "every metric the dashboard plots served");
        Assert.Empty(missing);
    }

    /// <summary>Reads /metrics strictly: every line a comment (# HELP, # TYPE, # EOF) or a sample with a numeric value.</summary>
    private static async Task<Scrape> ScrapeAsync(HttpClient http, Uri service)
    {
        using var response = await http.GetAsync(new Uri(service, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        var series = new Dictionary<string, double>();
        var names = new HashSet<string>();
        var typed = new HashSet<string>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0)
                continue;
            if (line.StartsWith('#'))
            {
                if (TypeLine().Match(line) is { Success: true } type)
                {
                    Assert.Contains(type.Groups["type"].Value, (string[])["counter", "gauge", "histogram", "summary", "untyped"]);
                    typed.Add(type.Groups["name"].Value);
                }
                continue;
            }
            var sample = SampleLine().Match(line);
            Assert.True(sample.Success, $"not a Prometheus sample line: {line}");
            var value = sample.Groups["value"].Value;
            Assert.True(double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || value is "+Inf" or "-Inf" or "NaN",
                $"not a number: {line}");
            var name = sample.Groups["name"].Value;
            // Every sample belongs to a family declared by a # TYPE line (a histogram's _bucket, _sum and _count to its own).
            Assert.True(typed.Contains(name) || typed.Contains(HistogramPart().Replace(name, "")), $"{name} has no # TYPE line before it");
            series[sample.Groups["series"].Value] = number;
            names.Add(name);
        }
        return new Scrape(series, names);
    }

    [GeneratedRegex(@"^# TYPE (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?<type>\w+)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^(?<series>(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\]|\\.)*"",?)*\})?) (?<value>\S+)( -?\d+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"\b(platform|dotnet)_[a-z_]+\b")]
    private static partial Regex DashboardMetric();

    [GeneratedRegex("-[0-9]+$")]
    private static partial Regex InstanceSuffix();

    [GeneratedRegex("_(bucket|sum|count)$")]
    private static partial Regex HistogramPart();
}
