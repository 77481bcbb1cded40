using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Mvc.Testing;
using Platform.Testing;

namespace Platform.Gateway.Tests.Dashboard;

/// <summary>
/// The dashboard's charting library is served by the gateway itself (no CDN: the page's Content-Security-Policy
/// allows only 'self'), byte for byte the release recorded in its VERSION file, beside its licence.
/// </summary>
public sealed class ChartLibraryTests : IAsyncLifetime
{
    private static readonly string Vendor = Path.Combine(RepoRoot.Find(), "services", "gateway", "wwwroot", "vendor", "chart.js");

    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-dashboard-files");
        _gateway = InProcessGateway.Start(_env);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    [Fact]
    public async Task The_gateway_serves_the_pinned_Chart_js_release_and_its_licence_and_the_page_loads_it_from_there()
    {
        using var http = _gateway.CreateClient();
        // "sha256 <hex>  chart.umd.min.js", as scripts/vendor-chartjs.sh wrote it after checking the registry's integrity.
        var pinned = File.ReadLines(Path.Combine(Vendor, "VERSION")).Single(l => l.StartsWith("sha256 ", StringComparison.Ordinal)).Split(' ')[1];

        using var script = await http.GetAsync(new Uri("/vendor/chart.js/chart.umd.min.js", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        var bytes = await script.Content.ReadAsByteArrayAsync();
        Assert.Equal(pinned, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        Assert.StartsWith("/*!\n * Chart.js v4.", System.Text.Encoding.UTF8.GetString(bytes, 0, 40), StringComparison.Ordinal);

        using var licence = await http.GetAsync(new Uri("/vendor/chart.js/LICENSE.md", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, licence.StatusCode);
        Assert.Contains("The MIT License (MIT)", await licence.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var page = await http.GetStringAsync(new Uri("/", UriKind.Relative));
        Assert.Contains("<script src=\"vendor/chart.js/chart.umd.min.js\"></script>", page, StringComparison.Ordinal);
        Assert.Contains("default-src 'self'", page, StringComparison.Ordinal);
    }
}
