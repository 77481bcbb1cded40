using System.Net;
using System.Net.Http.Headers;
using Dapper;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Auth;

/// <summary>
/// Keys that authenticated are believed for a while without reading api_keys again; keys that did not are asked about
/// every time. The statements are counted from Npgsql's own tracing of the gateway's real database.
/// </summary>
public sealed class ApiKeyCacheTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program>? _gateway;

    public async Task InitializeAsync() =>
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-key-cache");

    public async Task DisposeAsync()
    {
        if (_gateway is not null)
            await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private WebApplicationFactory<Program> Start(Dictionary<string, string>? settings = null) => _gateway = InProcessGateway.Start(_env, settings);

    private NpgsqlDataSource Database => _gateway!.Services.GetRequiredService<NpgsqlDataSource>();

    /// <summary>GET /v1/jobs with <paramref name="key"/>: 200 for a client's key, 401 for an unknown one; it reads no api_keys itself.</summary>
    private async Task<HttpStatusCode> ListJobsWithAsync(string key)
    {
        using var http = _gateway!.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await http.GetAsync(new Uri("/v1/jobs", UriKind.Relative));
        return response.StatusCode;
    }

    [Fact]
    public async Task A_key_that_authenticated_is_not_looked_up_again()
    {
        Start();
        var key = await _gateway!.KeyForNewAccountAsync(Roles.Client);
        using var statements = new StatementCounter(Database);

        Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
        Assert.Equal(1, statements.Mentioning("api_keys"));

        Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
        Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
        Assert.Equal(1, statements.Mentioning("api_keys"));
    }

    [Fact]
    public async Task An_unknown_key_is_looked_up_every_time_and_works_as_soon_as_it_is_issued()
    {
        Start();
        var key = ApiKeys.New();
        using var statements = new StatementCounter(Database);

        Assert.Equal(HttpStatusCode.Unauthorized, await ListJobsWithAsync(key));
        var perRefusal = statements.Mentioning("api_keys");
        Assert.True(perRefusal >= 1, "a refused key was not looked up");
        Assert.Equal(HttpStatusCode.Unauthorized, await ListJobsWithAsync(key));
        Assert.Equal(2 * perRefusal, statements.Mentioning("api_keys"));

        var account = AccountId.New().Value;
        await using (var connection = await Database.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("insert into accounts (id, role, name) values (@account, 'client', 'issued late')", new { account });
            await connection.ExecuteAsync("insert into api_keys (key_hash, account_id, scheme) values (@hash, @account, @scheme)",
                new { hash = _gateway!.Services.GetRequiredService<ApiKeyHasher>().Hash(key), account, scheme = ApiKeys.HmacScheme });
        }
        Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
    }

    [Fact]
    public async Task A_remembered_key_is_looked_up_again_once_its_time_is_up()
    {
        Start(new() { ["Platform:ApiKeyCacheTtl"] = "00:00:01" });
        var key = await _gateway!.KeyForNewAccountAsync(Roles.Client);
        using var statements = new StatementCounter(Database);
        Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
        Assert.Equal(1, statements.Mentioning("api_keys"));

        await Eventually.UntilAsync(async () =>
        {
            Assert.Equal(HttpStatusCode.OK, await ListJobsWithAsync(key));
            return statements.Mentioning("api_keys") >= 2;
        }, TimeSpan.FromSeconds(20), "the key to be looked up again after its second in the cache");
    }
}
