using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Limits;

/// <summary>Rate limits per key and the request size limit, on the gateway in process with its real database.</summary>
public sealed class RequestLimitsTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-limits");
        _gateway = InProcessGateway.Start(_env, new Dictionary<string, string>
        {
            ["Limits:ClientPerSecond"] = "1",
            ["Limits:ClientBurst"] = "5",
            ["Limits:MaxJsonBodyBytes"] = "4096",
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<HttpClient> ClientAsync()
    {
        var key = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var http = _gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    [Fact]
    public async Task A_key_over_its_rate_gets_429_with_Retry_After_and_other_keys_are_not_affected()
    {
        using var busy = await ClientAsync();
        using var quiet = await ClientAsync();

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 20 && limited is null; i++)
        {
            var response = await busy.GetAsync(new Uri("/v1/jobs", UriKind.Relative));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
                limited = response;
            else
                response.Dispose();
        }

        Assert.NotNull(limited);
        using (limited)
        {
            Assert.True(statuses.Count(s => s == HttpStatusCode.OK) >= 5, string.Join(", ", statuses));
            Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
            Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {limited.Headers.RetryAfter}");
            var problem = JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement;
            Assert.EndsWith("rate-limited", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
        }
        using var other = await quiet.GetAsync(new Uri("/v1/jobs", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task A_json_body_over_the_limit_is_413_problem()
    {
        using var http = await ClientAsync();
        var json = JsonSerializer.Serialize(new { kernel = "vector-add", inputs = new { }, @params = new { padding = new string('x', 8192) } });
        using var body = new StringContent(json, System.Text.Encoding.UTF8, "application/json");

        using var response = await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), body);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("urn:platform:problem:payload-too-large", problem.GetProperty("type").GetString());
        Assert.Equal(413, problem.GetProperty("status").GetInt32());
    }
}
