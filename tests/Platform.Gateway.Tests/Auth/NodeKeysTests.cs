using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Auth;

/// <summary>
/// Node keys (POST/GET/DELETE /v1/account/node-keys): an operator makes one per node, so a node's machine never holds
/// the operator's own key. The gateway in process on the real Postgres; the services behind are not running, so an
/// allowed forwarded call ends in the gateway's 503. What a node key may call at all is RoleMatrixTests'.
/// </summary>
public sealed class NodeKeysTests : IAsyncLifetime
{
    private const string Cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-node-keys");
        var nowhere = $"http://127.0.0.1:{FreePort.Next().ToString(CultureInfo.InvariantCulture)}";
        // The key cache on (its default TTL): revocation and roles must hold with it.
        _gateway = InProcessGateway.Start(_env, new Dictionary<string, string>
        {
            ["Upstreams:Storage"] = nowhere,
            ["Upstreams:Rewards"] = nowhere,
            ["Upstreams:Scheduler"] = nowhere,
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string key, HttpContent? content = null)
    {
        using var http = _gateway.CreateClient();
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await http.SendAsync(request);
    }

    private static StringContent Enrollment(string workerId) =>
        new(JsonSerializer.Serialize(new { workerId, publicKey = "MFkw", signature = "MEUC" }), Encoding.UTF8, "application/json");

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(body);
        Assert.Equal($"urn:platform:problem:{type}", json.RootElement.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Only_an_operator_makes_lists_and_revokes_node_keys_and_a_key_is_shown_once_and_stored_as_its_hmac()
    {
        var client = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var @operator = await _gateway.KeyForNewAccountAsync(Roles.Operator);
        var other = await _gateway.KeyForNewAccountAsync(Roles.Operator);

        using (var refused = await SendAsync(HttpMethod.Post, "/v1/account/node-keys", client))
            await AssertProblemAsync(refused, HttpStatusCode.Forbidden, "forbidden");
        using var made = await SendAsync(HttpMethod.Post, "/v1/account/node-keys", @operator);
        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        using var created = JsonDocument.Parse(await made.Content.ReadAsStringAsync());
        var id = created.RootElement.GetProperty("id").GetString()!;
        var key = created.RootElement.GetProperty("key").GetString()!;
        Assert.StartsWith(ApiKeys.Prefix, key, StringComparison.Ordinal);
        Assert.Equal(1, created.RootElement.GetProperty("workers").GetInt32());

        using var listed = await SendAsync(HttpMethod.Get, "/v1/account/node-keys", @operator);
        var list = await listed.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        Assert.Contains(id, list, StringComparison.Ordinal);
        Assert.DoesNotContain(key, list, StringComparison.Ordinal);
        using (var othersList = await SendAsync(HttpMethod.Get, "/v1/account/node-keys", other))
            Assert.DoesNotContain(id, await othersList.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await using (var connection = await _gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync())
        {
            var stored = await connection.QuerySingleAsync<byte[]>("select key_hash from api_keys where id = @id", new { id });
            Assert.Equal(_gateway.Services.GetRequiredService<ApiKeyHasher>().Hash(key), stored);
        }

        // Another operator cannot revoke it, a node key cannot either; its operator can, once.
        using (var byOther = await SendAsync(HttpMethod.Delete, $"/v1/account/node-keys/{id}", other))
            await AssertProblemAsync(byOther, HttpStatusCode.NotFound, "node-key-not-found");
        using (var byNode = await SendAsync(HttpMethod.Delete, $"/v1/account/node-keys/{id}", key))
            await AssertProblemAsync(byNode, HttpStatusCode.Forbidden, "forbidden");
        using (var revoked = await SendAsync(HttpMethod.Delete, $"/v1/account/node-keys/{id}", @operator))
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        using (var again = await SendAsync(HttpMethod.Delete, $"/v1/account/node-keys/{id}", @operator))
            await AssertProblemAsync(again, HttpStatusCode.NotFound, "node-key-not-found");
    }

    [Fact]
    public async Task A_revoked_node_key_gets_401_at_once_though_it_was_cached()
    {
        var @operator = await _gateway.KeyForNewAccountAsync(Roles.Operator);
        var key = await _gateway.NodeKeyOfAsync(@operator);
        // Used, so the gateway's key cache holds it.
        using (var before = await SendAsync(HttpMethod.Get, $"/v1/blobs/{Cid}", key))
            await AssertProblemAsync(before, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");
        using var listed = await SendAsync(HttpMethod.Get, "/v1/account/node-keys", @operator);
        var id = JsonDocument.Parse(await listed.Content.ReadAsStringAsync()).RootElement[0].GetProperty("id").GetString();

        using (var revoked = await SendAsync(HttpMethod.Delete, $"/v1/account/node-keys/{id}", @operator))
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);

        using (var get = await SendAsync(HttpMethod.Get, $"/v1/blobs/{Cid}", key))
            await AssertProblemAsync(get, HttpStatusCode.Unauthorized, "unauthorized");
        using (var pin = await SendAsync(HttpMethod.Post, "/v1/blobs", key, new ByteArrayContent([1, 2, 3]) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }))
            await AssertProblemAsync(pin, HttpStatusCode.Unauthorized, "unauthorized");
        using (var enroll = await SendAsync(HttpMethod.Post, "/v1/nodes", key, Enrollment("wrk_a")))
            await AssertProblemAsync(enroll, HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task A_node_key_enrolls_only_the_workers_it_enrolled_first_and_an_operator_key_any()
    {
        var @operator = await _gateway.KeyForNewAccountAsync(Roles.Operator);
        var one = await _gateway.NodeKeyOfAsync(@operator);

        // The enrollment reaches for the scheduler (503 here) once the key is bound to the id; again with the same id too.
        using (var first = await SendAsync(HttpMethod.Post, "/v1/nodes", one, Enrollment("wrk_first")))
            await AssertProblemAsync(first, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");
        using (var second = await SendAsync(HttpMethod.Post, "/v1/nodes", one, Enrollment("wrk_second")))
            await AssertProblemAsync(second, HttpStatusCode.Conflict, "node-key-bound");
        using (var again = await SendAsync(HttpMethod.Post, "/v1/nodes", one, Enrollment("wrk_first")))
            await AssertProblemAsync(again, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");

        // A key made for two replicas takes two ids, then no third; concurrent enrollments of new ids take at most two.
        var two = await _gateway.NodeKeyOfAsync(@operator, workers: 2);
        var statuses = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
        {
            using var response = await SendAsync(HttpMethod.Post, "/v1/nodes", two, Enrollment($"wrk_replica{i}"));
            return response.StatusCode;
        }));
        Assert.Equal(2, statuses.Count(s => s == HttpStatusCode.ServiceUnavailable));
        Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.Conflict));

        using var listed = await SendAsync(HttpMethod.Get, "/v1/account/node-keys", @operator);
        var keys = JsonDocument.Parse(await listed.Content.ReadAsStringAsync()).RootElement.EnumerateArray()
            .Select(k => k.GetProperty("workerIds").EnumerateArray().Select(w => w.GetString()).ToList()).ToList();
        Assert.Contains(keys, k => k.SequenceEqual(["wrk_first"]));
        Assert.Contains(keys, k => k.Count == 2 && k.All(w => w!.StartsWith("wrk_replica", StringComparison.Ordinal)));

        // The operator's own key is bound to nothing.
        foreach (var id in new[] { "wrk_x", "wrk_y" })
        {
            using var byOperator = await SendAsync(HttpMethod.Post, "/v1/nodes", @operator, Enrollment(id));
            await AssertProblemAsync(byOperator, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");
        }
    }

    [Fact]
    public async Task Each_key_keeps_its_own_role_in_the_cache_whichever_key_of_the_account_came_first()
    {
        foreach (var operatorFirst in new[] { true, false })
        {
            var @operator = await _gateway.KeyForNewAccountAsync(Roles.Operator);
            var node = await _gateway.NodeKeyOfAsync(@operator);
            var order = operatorFirst ? new[] { @operator, node } : [node, @operator];
            foreach (var key in order)
            {
                using var stake = await SendAsync(HttpMethod.Post, "/v1/account/stake", key, JsonContent.Create(new { amount = 1 }));
                if (key == node)
                    await AssertProblemAsync(stake, HttpStatusCode.Forbidden, "forbidden");
                else
                    await AssertProblemAsync(stake, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");
            }
        }
    }

    [Fact]
    public async Task A_node_key_request_without_a_readable_worker_id_is_refused_before_anything_is_bound()
    {
        var @operator = await _gateway.KeyForNewAccountAsync(Roles.Operator);
        var key = await _gateway.NodeKeyOfAsync(@operator);

        using (var notJson = await SendAsync(HttpMethod.Post, "/v1/nodes", key, new StringContent("{", Encoding.UTF8, "application/json")))
            await AssertProblemAsync(notJson, HttpStatusCode.BadRequest, "validation");
        using (var noId = await SendAsync(HttpMethod.Post, "/v1/nodes", key, new StringContent("{}", Encoding.UTF8, "application/json")))
            await AssertProblemAsync(noId, HttpStatusCode.BadRequest, "validation");
        using (var huge = await SendAsync(HttpMethod.Post, "/v1/nodes", key, new StringContent($$"""{"workerId":"wrk_a","pad":"{{new string('x', 20_000)}}"}""", Encoding.UTF8, "application/json")))
            await AssertProblemAsync(huge, HttpStatusCode.RequestEntityTooLarge, "payload-too-large");

        // Nothing bound: the key still enrolls the first id it really enrolls.
        using var first = await SendAsync(HttpMethod.Post, "/v1/nodes", key, Enrollment("wrk_b"));
        await AssertProblemAsync(first, HttpStatusCode.ServiceUnavailable, "upstream-unavailable");
    }
}
