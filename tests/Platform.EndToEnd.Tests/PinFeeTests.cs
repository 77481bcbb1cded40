using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>Pins are paid for once, by size, through the ledger, before they are committed.</summary>
public sealed class PinFeeTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    private byte[] RandomBytes(int size, int seed) => SeededData.Bytes(size, seed, output);

    [Fact]
    public async Task A_client_without_credits_gets_402_and_nothing_is_pinned()
    {
        var client = await network.CreateAccountAsync("client", 0m);
        using var http = network.Client(client.Key);
        var bytes = RandomBytes(10_000, seed: 1);

        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), new ByteArrayContent(bytes));

        Assert.Equal(HttpStatusCode.PaymentRequired, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("urn:platform:problem:insufficient-credits", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        using var read = await http.GetAsync(new Uri($"/v1/blobs/{Platform.Contracts.Cid.Compute(bytes)}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
    }

    [Fact]
    public async Task A_pin_while_the_ledgers_database_is_down_gets_503_to_retry_and_pins_nothing()
    {
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        var bytes = RandomBytes(10_000, seed: 3);
        // The ledger answers the fee request with a fault (its consumer cannot reach its database), not silence.
        var (status, problem) = await network.WhileDatabaseDownAsync("rewards", async () =>
        {
            using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), new ByteArrayContent(bytes));
            return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
        });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("urn:platform:problem:upstream-unavailable", problem.GetProperty("type").GetString());
        using var read = await http.GetAsync(new Uri($"/v1/blobs/{Platform.Contracts.Cid.Compute(bytes)}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        // Once the ledger is back, the same upload pins.
        var pinned = await Eventually.UntilAsync(async () =>
        {
            using var again = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), new ByteArrayContent(bytes));
            return again.StatusCode;
        }, s => s == HttpStatusCode.Created, TimeSpan.FromSeconds(60), "the pin once the ledger is back");
        Assert.Equal(HttpStatusCode.Created, pinned);
    }

    [Fact]
    public async Task The_fee_is_charged_once_per_blob_by_size_and_operators_pin_for_free()
    {
        var client = await network.CreateAccountAsync("client", 1m);
        var other = await network.CreateAccountAsync("client", 1m);
        using var http = network.Client(client.Key);
        using var otherHttp = network.Client(other.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        var bytes = RandomBytes(2 << 20, seed: 2);
        var operatorBefore = (await operatorHttp.AccountAsync()).Balance;

        var pinned = await http.PinAsync(bytes);
        await http.PinAsync(bytes);
        await otherHttp.PinAsync(bytes);
        await operatorHttp.PinAsync(RandomBytes(3 << 20, seed: 3));

        // 1 credit per GiB by default: 2 MiB costs 2/1024 credits, rounded to 6 digits.
        Assert.Equal(1m - 0.001953m, (await http.AccountAsync()).Balance);
        Assert.Equal(1m, (await otherHttp.AccountAsync()).Balance);
        Assert.Equal(operatorBefore, (await operatorHttp.AccountAsync()).Balance);
        var proof = await http.GetFromJsonAsync<JsonElement>($"/v1/blobs/{pinned.Cid}/proof?chunk=1");
        Assert.Equal(2, proof.GetProperty("chunks").GetInt32());
        using var delete = await http.DeleteAsync(new Uri($"/v1/blobs/{pinned.Cid}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, delete.StatusCode);
    }
}
