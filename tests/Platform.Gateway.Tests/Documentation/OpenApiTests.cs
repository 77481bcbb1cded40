using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Testing;

namespace Platform.Gateway.Tests.Documentation;

/// <summary>
/// The OpenAPI document is valid, every route the gateway serves is in it, and everything in it is served:
/// the gateway runs in process (on the run's real RabbitMQ and Postgres) so its route table can be read.
/// </summary>
public sealed class OpenApiTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-openapi");
        _gateway = InProcessGateway.Start(_env);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<JsonDocument> DocumentAsync()
    {
        using var http = _gateway.CreateClient();
        using var response = await http.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Every (method, route) the gateway maps, the document's own route aside.</summary>
    private HashSet<string> Routes() =>
    [
        .. _gateway.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText != "/openapi/{documentName}.json")
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                .Select(method => $"{method} {Normalize(e.RoutePattern.RawText!)}")),
    ];

    private static string Normalize(string route) => "/" + route.Trim('/');

    private static HashSet<string> Documented(JsonDocument document) =>
    [
        .. document.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject()
                .Where(op => op.Name is "get" or "put" or "post" or "delete" or "patch" or "head" or "options")
                .Select(op => $"{op.Name.ToUpperInvariant()} {Normalize(path.Name)}")),
    ];

    [Fact]
    public async Task Every_route_is_documented_and_every_documented_route_exists()
    {
        using var document = await DocumentAsync();
        var documented = Documented(document);
        var routes = Routes();

        Assert.Empty(routes.Except(documented).Order());
        Assert.Empty(documented.Except(routes).Order());
        Assert.Contains("GET /v1/jobs/{id}/events", documented);
        Assert.Contains("GET /health/ready", documented);
    }

    [Fact]
    public async Task Responses_of_forwarded_routes_have_their_schemas()
    {
        using var document = await DocumentAsync();
        var schemas = document.RootElement.GetProperty("components").GetProperty("schemas").EnumerateObject().Select(p => p.Name).ToHashSet();

        Assert.Superset(new HashSet<string> { "JobView", "PinResponse", "PinStatusResponse", "ProofResponse", "DatasetView", "AccountResponse",
            "LedgerPage", "EarningsResponse", "StakeRequest", "StakeResponse", "LowBalanceRequest", "WorkerView", "NetworkView", "ProblemDetails" }, schemas);
    }

    [Fact]
    public async Task The_document_is_valid_OpenAPI()
    {
        var path = Path.Combine(Path.GetTempPath(), $"platform-openapi-{Guid.NewGuid():n}.json");
        using (var document = await DocumentAsync())
            await File.WriteAllTextAsync(path, document.RootElement.GetRawText());
        try
        {
            var validator = Tools.Find("openapi-spec-validator")
                ?? throw new InvalidOperationException("openapi-spec-validator is not installed (pip install openapi-spec-validator)");
            using var process = Process.Start(new ProcessStartInfo(validator, [path]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, output);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
