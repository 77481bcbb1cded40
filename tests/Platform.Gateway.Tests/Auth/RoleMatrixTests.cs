using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Auth;

/// <summary>
/// Who may call what: every route the gateway maps (read from its route table, so a new endpoint without an entry
/// here fails) against anonymous, client, operator, admin and node-key callers (a node key, made by an operator for its
/// node, may fetch and pin blobs and enroll, nothing else). A role the matrix allows never gets 401 or
/// 403 from the gateway; one it does not gets 401 (no key) or 403 (the wrong role). docs/API.md's roles column says
/// the same. The services behind are not running: an allowed call ends in the gateway's 503, a 4xx for its input,
/// or a 404, all of which are "allowed".
/// </summary>
public sealed class RoleMatrixTests : IAsyncLifetime
{
    private const string Anonymous = "anonymous";
    private static readonly string[] Any = [Roles.Client, Roles.Operator, Roles.Admin];
    private static readonly string[] Everyone = [Anonymous, .. Any, Roles.Node];
    private static readonly string[] Clients = [Roles.Client, Roles.Admin];
    private static readonly string[] Operators = [Roles.Operator];
    private static readonly string[] Admins = [Roles.Admin];
    private static readonly string[] BlobIo = [.. Any, Roles.Node];
    private static readonly string[] Enrollers = [Roles.Operator, Roles.Node];

    /// <summary>The truth, as in docs/API.md.</summary>
    private static readonly Dictionary<string, string[]> Matrix = new()
    {
        ["POST /v1/admin/accounts"] = Admins,
        ["POST /v1/blobs"] = BlobIo,
        ["GET /v1/blobs/{cid}"] = BlobIo,
        ["HEAD /v1/blobs/{cid}"] = BlobIo,
        ["DELETE /v1/blobs/{cid}"] = Any,
        ["GET /v1/blobs/{cid}/pin"] = Any,
        ["GET /v1/blobs/{cid}/proof"] = Any,
        ["POST /v1/datasets"] = Any,
        ["GET /v1/datasets/{cid}"] = Any,
        ["POST /v1/jobs"] = Clients,
        ["GET /v1/jobs"] = Clients,
        ["GET /v1/jobs/{id}"] = Clients,
        ["POST /v1/jobs/{id}/cancel"] = Clients,
        ["GET /v1/jobs/{id}/events"] = Clients,
        ["GET /v1/jobs/{id}/receipt"] = Clients,
        ["POST /v1/jobs:batch"] = Clients,
        ["GET /v1/batches/{id}"] = Clients,
        ["POST /v1/batches/{id}/cancel"] = Clients,
        ["GET /v1/batches/{id}/events"] = Clients,
        ["GET /v1/receipts/key"] = Everyone,
        ["GET /v1/account"] = Any,
        ["GET /v1/account/ledger"] = Any,
        ["GET /v1/account/earnings"] = Operators,
        ["GET /v1/account/spending"] = Clients,
        ["POST /v1/account/stake"] = Operators,
        ["POST /v1/account/unstake"] = Operators,
        ["PUT /v1/account/low-balance"] = Clients,
        ["GET /v1/account/webhook"] = Clients,
        ["PUT /v1/account/webhook"] = Clients,
        ["DELETE /v1/account/webhook"] = Clients,
        ["POST /v1/account/webhook/test"] = Clients,
        ["POST /v1/account/node-keys"] = Operators,
        ["GET /v1/account/node-keys"] = Operators,
        ["DELETE /v1/account/node-keys/{id}"] = Operators,
        ["POST /v1/nodes"] = Enrollers,
        ["GET /v1/workers"] = Everyone,
        ["GET /v1/workers/{id}/placement"] = Everyone,
        ["GET /v1/network"] = Everyone,
        ["GET /v1/network/history"] = Everyone,
        ["GET /v1/workers/{id}/history"] = Everyone,
        ["GET /v1/kernels"] = Everyone,
        ["GET /health/live"] = Everyone,
        ["GET /health/ready"] = Everyone,
        ["GET /metrics"] = Everyone,
        ["GET /openapi/{documentName}.json"] = Everyone,
    };

    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;
    private readonly Dictionary<string, string?> _keys = new() { [Anonymous] = null, [Roles.Admin] = InProcessGateway.AdminKey };

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-roles");
        // Upstreams on a port nothing listens on; limits high enough for the whole matrix.
        var nowhere = $"http://127.0.0.1:{FreePort.Next().ToString(CultureInfo.InvariantCulture)}";
        _gateway = InProcessGateway.Start(_env, new Dictionary<string, string>
        {
            ["Upstreams:Storage"] = nowhere,
            ["Upstreams:Rewards"] = nowhere,
            ["Upstreams:Scheduler"] = nowhere,
            ["Limits:ClientPerSecond"] = "10000",
            ["Limits:ClientBurst"] = "10000",
            ["Limits:OperatorPerSecond"] = "10000",
            ["Limits:OperatorBurst"] = "10000",
            ["Limits:AnonymousPerSecond"] = "10000",
            ["Limits:AnonymousBurst"] = "10000",
        });
        foreach (var role in new[] { Roles.Client, Roles.Operator })
            _keys[role] = await _gateway.KeyForNewAccountAsync(role);
        _keys[Roles.Node] = await _gateway.NodeKeyOfAsync(_keys[Roles.Operator]!);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private List<string> Routes() =>
    [
        .. _gateway.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                .Select(method => $"{method} /{e.RoutePattern.RawText!.Trim('/')}"))
            .Distinct().Order(StringComparer.Ordinal),
    ];

    [Fact]
    public void Every_route_has_an_entry_in_the_matrix_and_every_entry_is_a_route()
    {
        var routes = Routes();

        Assert.Empty(routes.Except(Matrix.Keys).Order(StringComparer.Ordinal));
        Assert.Empty(Matrix.Keys.Except(routes).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Each_role_gets_exactly_the_endpoints_the_matrix_gives_it()
    {
        var wrong = new List<string>();
        using var http = _gateway.CreateClient();
        foreach (var route in Routes())
        {
            var allowed = Matrix.GetValueOrDefault(route, []);
            foreach (var (role, key) in _keys)
            {
                var status = await CallAsync(http, route, key);
                var expected = allowed.Contains(role) ? "allowed" : key is null ? "401" : "403";
                var actual = status switch { HttpStatusCode.Unauthorized => "401", HttpStatusCode.Forbidden => "403", _ => "allowed" };
                if (expected != actual)
                    wrong.Add($"{route} as {role}: expected {expected}, got {(int)status}");
            }
        }

        Assert.Empty(wrong);
    }

    private static async Task<HttpStatusCode> CallAsync(HttpClient http, string route, string? key)
    {
        var method = route[..route.IndexOf(' ', StringComparison.Ordinal)];
        var path = route[(method.Length + 1)..]
            .Replace("{cid}", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", StringComparison.Ordinal)
            .Replace("{id}", "job_unknown", StringComparison.Ordinal)
            .Replace("{documentName}", "v1", StringComparison.Ordinal);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (key is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        // A body of the type the route accepts: routing answers 415 to another type before authentication runs.
        if (method is "POST" or "PUT")
            request.Content = path == "/v1/blobs" ? new ByteArrayContent([1, 2, 3]) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }
                : new StringContent("{}", Encoding.UTF8, "application/json");
        // The event stream of an unknown job ends at once; headers are all this needs of any response.
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return response.StatusCode;
    }
}
