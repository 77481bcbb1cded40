using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tensors;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// A database that cannot be reached is a moment's unavailability, not an error of the request or the code: while the
/// gateway's own database refuses connections, a write is a 503 problem with Retry-After (no stack trace), what the
/// gateway forwards to other services is still answered, and once the database is back the same write is accepted.
/// Real processes, broker and database.
/// </summary>
public sealed class DatabaseOutageTests(Network network) : IClassFixture<Network>
{
    [Fact]
    public async Task While_the_gateways_database_is_down_writes_are_503_with_Retry_After_and_forwarded_reads_still_answer()
    {
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f], 2));
        // The key is looked up once now, so the outage below tests the write, not the authentication.
        Assert.Equal(10m, (await http.AccountAsync()).Balance);
        var job = new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid } };

        await network.WhileDatabaseDownAsync("gateway", async () =>
        {
            using var refused = await http.SubmitAsync(job);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.True(refused.Headers.RetryAfter is not null, "503 without Retry-After");
            var body = await refused.Content.ReadAsStringAsync();
            Assert.Equal("urn:platform:problem:unavailable", JsonDocument.Parse(body).RootElement.GetProperty("type").GetString());
            Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
            Assert.DoesNotContain("Npgsql", body, StringComparison.Ordinal);

            // The network view lives in the scheduler's database: still answered through the gateway.
            using var view = await http.GetAsync(new Uri("/v1/network", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, view.StatusCode);
            return true;
        });

        using var accepted = await http.SubmitAsync(job);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var submitted = (await accepted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        Assert.Equal("completed", (await http.WaitForAsync(submitted.Id, j => j.Status is "completed" or "failed", "job finished")).Status);
    }
}
