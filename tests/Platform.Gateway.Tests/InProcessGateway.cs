using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests;

/// <summary>
/// The gateway in process on the run's real RabbitMQ and Postgres, for tests that need its services or route
/// table; tests of whole journeys run it as a process instead (tests/Platform.EndToEnd.Tests).
/// </summary>
public static class InProcessGateway
{
    public const string AdminKey = "pk_admin_in_process_test";

    /// <param name="services">Replaces services of the gateway's, such as a stand-in for an upstream.</param>
    /// <param name="kestrel">
    /// On Kestrel at a loopback port (<see cref="Address"/>) instead of the in-memory test server, for tests of what
    /// happens on the wire, such as a client that stops sending its body.
    /// </param>
    public static WebApplicationFactory<Program> Start(TestEnvironment env, IReadOnlyDictionary<string, string>? settings = null, Action<IServiceCollection>? services = null,
        bool kestrel = false)
    {
        var gateway = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("ConnectionStrings:RabbitMq", env.RabbitMqUri);
            web.UseSetting("ConnectionStrings:Postgres", env.PostgresConnectionStringFor("gateway"));
            web.UseSetting("Platform:AdminKey", AdminKey);
            web.UseSetting("Platform:KeyHashSecret", "in-process-test-key-hash-secret-0123456789");
            web.UseSetting("Platform:GatewaySecret", env.GatewaySecret);
            foreach (var (name, value) in settings ?? new Dictionary<string, string>())
                web.UseSetting(name, value);
            if (services is not null)
                web.ConfigureTestServices(services);
        });
        if (kestrel)
        {
            gateway.UseKestrel(0);
            gateway.StartServer(); // started: migrations applied, bus connected
        }
        else
            _ = gateway.Server; // started: migrations applied, bus connected
        return gateway;
    }

    /// <summary>Where a gateway started with kestrel: true listens.</summary>
    public static Uri Address(this WebApplicationFactory<Program> gateway) =>
        new(gateway.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>A new account of <paramref name="role"/> with a key, written straight into the gateway's tables as creating one would; returns the key.</summary>
    public static async Task<string> KeyForNewAccountAsync(this WebApplicationFactory<Program> gateway, string role)
    {
        var key = ApiKeys.New();
        var account = AccountId.New().Value;
        await using var connection = await gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        await connection.ExecuteAsync("insert into accounts (id, role, name) values (@account, @role, 'in-process test')", new { account, role });
        await connection.ExecuteAsync("insert into api_keys (key_hash, account_id, scheme) values (@hash, @account, @scheme)",
            new { hash = gateway.Services.GetRequiredService<ApiKeyHasher>().Hash(key), account, scheme = ApiKeys.HmacScheme });
        return key;
    }

    /// <summary>A node key made through the API (POST /v1/account/node-keys) with an operator's key.</summary>
    public static async Task<string> NodeKeyOfAsync(this WebApplicationFactory<Program> gateway, string operatorKey, int workers = 1)
    {
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/account/node-keys", UriKind.Relative))
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { workers }),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", operatorKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("key").GetString()!;
    }
}
