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

/// <summary>How keys are stored and checked: HMAC under the configured secret, old SHA-256 rows upgraded on use.</summary>
public sealed class KeyStorageTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-keys");
        _gateway = InProcessGateway.Start(_env);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<T?> ScalarAsync<T>(string sql, object? parameters = null)
    {
        await using var connection = await _gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<T>(sql, parameters);
    }

    private async Task<HttpStatusCode> StatusWithAsync(string key)
    {
        using var http = _gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        // An admin-only endpoint with an invalid body: 400 once the key is known as an admin's, 401/403 before.
        using var response = await http.PostAsync(new Uri("/v1/admin/accounts", UriKind.Relative), new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        return response.StatusCode;
    }

    [Fact]
    public async Task A_key_from_before_the_secret_is_accepted_once_and_rehashed_under_it()
    {
        var key = ApiKeys.New();
        var account = AccountId.New().Value;
        await ScalarAsync<int>("insert into accounts (id, role, name) values (@account, 'admin', 'legacy')", new { account });
        await ScalarAsync<int>("insert into api_keys (key_hash, account_id, scheme) values (@hash, @account, 'sha256')", new { hash = ApiKeys.LegacyHash(key), account });

        Assert.Equal(HttpStatusCode.BadRequest, await StatusWithAsync(key));

        var hasher = _gateway.Services.GetRequiredService<ApiKeyHasher>();
        Assert.Equal("hmac-sha256", await ScalarAsync<string>("select scheme from api_keys where account_id = @account", new { account }));
        Assert.Equal(hasher.Hash(key), await ScalarAsync<byte[]>("select key_hash from api_keys where account_id = @account", new { account }));
        Assert.Equal(HttpStatusCode.BadRequest, await StatusWithAsync(key));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithAsync(key + "x"));
    }

    [Fact]
    public async Task A_stored_plain_SHA256_of_a_key_does_not_authenticate_as_an_HMAC_row()
    {
        var key = ApiKeys.New();
        var account = AccountId.New().Value;
        await ScalarAsync<int>("insert into accounts (id, role, name) values (@account, 'admin', 'confused')", new { account });
        // A row claiming the new scheme but holding the old hash (someone copying hashes around) matches nothing.
        await ScalarAsync<int>("insert into api_keys (key_hash, account_id, scheme) values (@hash, @account, 'hmac-sha256')", new { hash = ApiKeys.LegacyHash(key), account });

        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithAsync(key));
    }

    [Fact]
    public async Task Admin_key_from_configuration_is_accepted_and_nothing_close_to_it_is()
    {
        Assert.Equal(HttpStatusCode.BadRequest, await StatusWithAsync(InProcessGateway.AdminKey));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithAsync(InProcessGateway.AdminKey[..^1]));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithAsync(InProcessGateway.AdminKey + "0"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("shorter-than-32-characters")]
    public async Task The_gateway_does_not_start_without_a_long_enough_key_hash_secret(string secret)
    {
        // A real gateway process, which must exit and say why. (In process, the test host's own shutdown after the
        // failed start can race it and surface as an ObjectDisposedException instead.)
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => ServiceProcess.StartAsync("gateway", _env,
            new Dictionary<string, string?> { ["Platform__KeyHashSecret"] = secret }));
        Assert.Contains("exited with code", failure.Message, StringComparison.Ordinal);
        Assert.Contains("KeyHashSecret", failure.Message, StringComparison.Ordinal);
    }
}
