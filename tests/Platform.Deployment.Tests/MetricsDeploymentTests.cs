using System.Text.Json;
using Platform.Testing;

namespace Platform.Deployment.Tests;

/// <summary>
/// Prometheus and Grafana in compose.yaml cannot run here (no container engine): their files are checked instead. The
/// scrape configuration names every .NET service of compose on the port its image listens on, the mounts point at
/// files that exist, Grafana's provisioned data source is the compose Prometheus and the dashboard is valid and uses it.
/// Whether the dashboard's metrics are served is checked against running services (EndToEnd MetricsTests).
/// </summary>
public sealed class MetricsDeploymentTests
{
    private static readonly string Root = RepoRoot.Find();
    private static readonly string[] DotnetServices = ["gateway", "scheduler", "rewards", "storage", "worker"];

    private static Dictionary<string, object> Compose() => ComposeYaml.Load(Path.Combine(Root, "compose.yaml")).Map("services");

    private static List<string> Volumes(string service) =>
        Compose().Map(service).TryGetValue("volumes", out var v) && v is List<object> list ? [.. list.Cast<string>()] : [];

    /// <summary>The host file or folder a volume line mounts at <paramref name="target"/>.</summary>
    private static string MountedAt(string service, string target)
    {
        var volume = Assert.Single(Volumes(service), v => v.Split(':')[1] == target);
        var source = volume.Split(':')[0];
        Assert.StartsWith("./", source, StringComparison.Ordinal);
        return Path.Combine(Root, source[2..]);
    }

    [Fact]
    public void Prometheus_scrapes_every_service_and_worker_of_compose_on_the_port_its_image_listens_on()
    {
        var config = ComposeYaml.Load(MountedAt("prometheus", "/etc/prometheus/prometheus.yml"));
        var jobs = ((List<object>)config["scrape_configs"]).Cast<Dictionary<string, object>>().ToDictionary(j => j.Scalar("job_name")!);
        foreach (var service in DotnetServices)
        {
            Assert.Contains(service, Compose().Keys);
            var listens = File.ReadAllText(Path.Combine(Root, "services", service, "Dockerfile"));
            Assert.Contains("ASPNETCORE_URLS=http://+:8080", listens, StringComparison.Ordinal);
            var job = jobs[service];
            Assert.Equal("/metrics", job.Scalar("metrics_path"));
            // A fixed service is one target; the workers (scaled) are found by DNS, every replica.
            var targets = job.TryGetValue("static_configs", out var s) ? string.Join(' ', ((List<object>)s).Select(o => o.ToString()))
                : string.Join(' ', ((List<object>)job["dns_sd_configs"]).Cast<Dictionary<string, object>>().Select(d => $"{d["names"]}:{d["port"]}"));
            Assert.Contains($"{service}:8080", targets.Replace("[\"", "", StringComparison.Ordinal).Replace("\"]", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
        Assert.Equal("dns_sd_configs", jobs["worker"].Keys.Single(k => k.EndsWith("_configs", StringComparison.Ordinal)));
    }

    [Fact]
    public void Grafana_is_provisioned_with_the_compose_prometheus_and_a_valid_dashboard_that_uses_it()
    {
        var provisioning = MountedAt("grafana", "/etc/grafana/provisioning");
        var source = ComposeYaml.Load(Path.Combine(provisioning, "datasources", "prometheus.yaml"));
        var datasource = Assert.Single(((List<object>)source["datasources"]).Cast<Dictionary<string, object>>());
        Assert.Equal("prometheus", datasource.Scalar("type"));
        Assert.Equal("http://prometheus:9090", datasource.Scalar("url"));
        Assert.Contains("127.0.0.1:9090:9090", string.Join(' ', (List<object>)Compose().Map("prometheus")["ports"]), StringComparison.Ordinal);

        // The dashboards' provider reads the folder compose mounts the dashboards into.
        var providers = ComposeYaml.Load(Path.Combine(provisioning, "dashboards", "platform.yaml"));
        var provider = Assert.Single(((List<object>)providers["providers"]).Cast<Dictionary<string, object>>());
        var dashboards = MountedAt("grafana", provider.Map("options").Scalar("path")!);

        var file = Assert.Single(Directory.GetFiles(dashboards, "*.json"));
        using var dashboard = JsonDocument.Parse(File.ReadAllText(file));
        var panels = dashboard.RootElement.GetProperty("panels").EnumerateArray().ToList();
        Assert.True(panels.Count >= 10, $"{panels.Count} panels");
        Assert.Equal(panels.Count, panels.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
        foreach (var panel in panels)
        {
            Assert.Equal(datasource.Scalar("uid"), panel.GetProperty("datasource").GetProperty("uid").GetString());
            var targets = panel.GetProperty("targets").EnumerateArray().ToList();
            Assert.NotEmpty(targets);
            Assert.All(targets, t => Assert.False(string.IsNullOrWhiteSpace(t.GetProperty("expr").GetString())));
            var expressions = string.Join(' ', targets.Select(t => t.GetProperty("expr").GetString()));
            Assert.Equal(expressions.Count(c => c == '('), expressions.Count(c => c == ')'));
        }
    }

    [Fact]
    public void Grafana_needs_a_password_from_the_environment_and_calls_nowhere_outside()
    {
        var environment = Compose().Map("grafana/environment");
        Assert.StartsWith("${", environment.Scalar("GF_SECURITY_ADMIN_PASSWORD"), StringComparison.Ordinal);
        Assert.Equal("false", environment.Scalar("GF_AUTH_ANONYMOUS_ENABLED"));
        foreach (var setting in new[] { "GF_ANALYTICS_REPORTING_ENABLED", "GF_ANALYTICS_CHECK_FOR_UPDATES", "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "GF_NEWS_NEWS_FEED_ENABLED" })
            Assert.Equal("false", environment.Scalar(setting));
        // Both listen on the host's loopback only.
        Assert.Contains("127.0.0.1:3000:3000", string.Join(' ', (List<object>)Compose().Map("grafana")["ports"]), StringComparison.Ordinal);
    }
}
