using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Limits;

/// <summary>
/// Keys the gateway has not seen lately are checked against the database only within an address's budget: unknown
/// keys past the limit cool the address down, and lookups have their own rate. The refusals come before
/// authentication, so a valid key never used here is refused too, while keys already known pass. In process with the
/// real database; every request of the test server comes from the same (absent) address.
/// </summary>
public sealed class KeyLookupGuardTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-key-guard");
        _gateway = InProcessGateway.Start(_env, new Dictionary<string, string>
        {
            ["Limits:BadKeysPerMinute"] = "2",
            ["Limits:KeyLookupsPerSecond"] = "1",
            ["Limits:KeyLookupBurst"] = "4",
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<HttpStatusCode> JobsWithAsync(string key, Action<HttpResponseMessage>? inspect = null)
    {
        using var http = _gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await http.GetAsync(new Uri("/v1/jobs", UriKind.Relative));
        inspect?.Invoke(response);
        return response.StatusCode;
    }

    private static async Task<string> ProblemTypeAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString()!;

    [Fact]
    public async Task Unknown_keys_past_the_limit_cool_the_address_down_before_any_lookup_while_known_keys_pass()
    {
        var known = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var neverUsed = await _gateway.KeyForNewAccountAsync(Roles.Client);
        Assert.Equal(HttpStatusCode.OK, await JobsWithAsync(known));

        // Two unknown keys a minute are allowed; the third is still looked up (and refused), and starts the cooldown.
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, await JobsWithAsync($"pk_guess_{i}"));

        HttpResponseMessage? cooled = null;
        using var http = _gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "pk_guess_3");
        using (cooled = await http.GetAsync(new Uri("/v1/jobs", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, cooled.StatusCode);
            Assert.Equal("application/problem+json", cooled.Content.Headers.ContentType?.MediaType);
            Assert.EndsWith("bad-key-cooldown", await ProblemTypeAsync(cooled), StringComparison.Ordinal);
            Assert.True(cooled.Headers.RetryAfter?.Delta > TimeSpan.FromSeconds(30), $"Retry-After: {cooled.Headers.RetryAfter}");
        }
        // Refused before authentication: a valid key never used here would need a lookup, so it waits too...
        Assert.Equal(HttpStatusCode.TooManyRequests, await JobsWithAsync(neverUsed));
        // ...and a key already known needs none.
        Assert.Equal(HttpStatusCode.OK, await JobsWithAsync(known));
    }

    [Fact]
    public async Task New_keys_beyond_the_addresss_lookup_rate_get_429_and_keys_already_checked_do_not()
    {
        var keys = new List<string>();
        for (var i = 0; i < 20; i++)
            keys.Add(await _gateway.KeyForNewAccountAsync(Roles.Client));

        var statuses = new List<HttpStatusCode>();
        string? type = null;
        foreach (var key in keys)
        {
            statuses.Add(await JobsWithAsync(key, response =>
            {
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    type ??= ProblemTypeAsync(response).GetAwaiter().GetResult();
            }));
        }

        // A burst of four and one a second: twenty lookups in a row cannot all pass unless they took 16 s.
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.EndsWith("rate-limited", type, StringComparison.Ordinal);
        var checkedKeys = keys.Where((_, i) => statuses[i] == HttpStatusCode.OK).ToList();
        Assert.True(checkedKeys.Count >= 4, string.Join(", ", statuses));
        foreach (var key in checkedKeys)
            Assert.Equal(HttpStatusCode.OK, await JobsWithAsync(key));
    }
}
