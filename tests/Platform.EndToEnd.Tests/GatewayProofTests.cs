using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Platform.Hosting.Http;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// rewards and storage called directly, past the gateway, as anyone who reaches their ports could (a node on the
/// same network, above all): an account named without the gateway's proof gets a 401 and nothing of it; the
/// gateway's own proof is honoured, and only for the request it was made for.
/// </summary>
public sealed class GatewayProofTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    private Uri Storage => network.Services.First(s => s.Service == "storage").BaseUrl;
    private Uri Rewards => network.Services.First(s => s.Service == "rewards").BaseUrl;

    private static async Task<HttpResponseMessage> SendAsync(Uri service, HttpMethod method, string path, string account, string? proof = null,
        HttpContent? content = null, bool asPeer = false)
    {
        using var http = new HttpClient { BaseAddress = service };
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Add(GatewayProof.AccountHeader, account);
        if (proof is not null)
            request.Headers.Add(GatewayProof.Header, proof);
        if (asPeer)
            request.Headers.Add("X-Platform-Storage-Peer", "storage-1");
        return await http.SendAsync(request);
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, string account)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"expected 401, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("urn:platform:problem:gateway-proof-required", JsonDocument.Parse(text).RootElement.GetProperty("type").GetString());
        Assert.DoesNotContain(account, text, StringComparison.Ordinal);
    }

    private async Task<HttpStatusCode> PinnedStatusAsync(Cid cid)
    {
        using var http = new HttpClient { BaseAddress = Storage };
        using var response = await http.GetAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative));
        return response.StatusCode;
    }

    [Fact]
    public async Task A_forged_account_header_gets_401_from_rewards_and_storage_and_charges_and_pins_nothing()
    {
        var victim = await network.CreateAccountAsync("client", 5m);
        using var gateway = network.Client(victim.Key);
        var bytes = SeededData.Bytes(100_000, seed: 1501, output);
        var cid = Cid.Compute(bytes);

        await AssertRefusedAsync(await SendAsync(Rewards, HttpMethod.Get, "/v1/account", victim.AccountId), victim.AccountId);
        await AssertRefusedAsync(await SendAsync(Rewards, HttpMethod.Get, "/v1/account/ledger", victim.AccountId), victim.AccountId);
        await AssertRefusedAsync(await SendAsync(Storage, HttpMethod.Post, "/v1/blobs", victim.AccountId, content: new ByteArrayContent(bytes)), victim.AccountId);
        // The header storage nodes send each other trusts nothing either.
        await AssertRefusedAsync(await SendAsync(Storage, HttpMethod.Post, "/v1/blobs", victim.AccountId, content: new ByteArrayContent(bytes), asPeer: true), victim.AccountId);
        await AssertRefusedAsync(await SendAsync(Storage, HttpMethod.Post, "/v1/datasets", victim.AccountId,
            content: JsonContent.Create(new { name = "forged", license = "MIT", blobs = new[] { cid.Value } })), victim.AccountId);

        Assert.Equal(HttpStatusCode.NotFound, await PinnedStatusAsync(cid));
        var account = await gateway.AccountAsync();
        Assert.Equal(5m, account.Balance);
        Assert.Equal(victim.AccountId, account.AccountId);
    }

    [Fact]
    public async Task The_gateways_proof_is_honoured_for_its_own_request_and_refused_when_replayed_for_another()
    {
        var payer = await network.CreateAccountAsync("client", 5m);
        var other = await network.CreateAccountAsync("client", 5m);
        var bytes = SeededData.Bytes(1 << 20, seed: 1502, output);
        var pinUri = new Uri(Storage, "/v1/blobs");
        var proof = GatewaySigner.Proof(network.Environment.GatewaySecret, HttpMethod.Post, pinUri, payer.AccountId);

        // Replayed for another account, another path or another method: refused, nothing pinned.
        await AssertRefusedAsync(await SendAsync(Storage, HttpMethod.Post, "/v1/blobs", other.AccountId, proof, new ByteArrayContent(bytes)), other.AccountId);
        await AssertRefusedAsync(await SendAsync(Storage, HttpMethod.Post, "/v1/datasets", payer.AccountId, proof,
            JsonContent.Create(new { name = "replayed", license = "MIT", blobs = new[] { Cid.Compute(bytes).Value } })), payer.AccountId);
        await AssertRefusedAsync(await SendAsync(Rewards, HttpMethod.Post, "/v1/account/stake", payer.AccountId, proof, JsonContent.Create(new { amount = 1 })), payer.AccountId);
        await AssertRefusedAsync(await SendAsync(Rewards, HttpMethod.Get, "/v1/account", payer.AccountId, proof), payer.AccountId);
        Assert.Equal(HttpStatusCode.NotFound, await PinnedStatusAsync(Cid.Compute(bytes)));

        // For its own request the proof stands for the payer: the pin is the payer's and the payer pays for it.
        using var pinned = await SendAsync(Storage, HttpMethod.Post, "/v1/blobs", payer.AccountId, proof, new ByteArrayContent(bytes));
        Assert.True(pinned.StatusCode == HttpStatusCode.Created, await pinned.Content.ReadAsStringAsync());
        using var gateway = network.Client(payer.Key);
        var status = await gateway.GetFromJsonAsync<JsonElement>($"/v1/blobs/{Cid.Compute(bytes)}/pin");
        Assert.Equal(payer.AccountId, status.GetProperty("owner").GetString());
        Assert.Equal(5m - 0.001m, (await gateway.AccountAsync()).Balance); // 1 MiB pays the minimum pin fee
        using var otherGateway = network.Client(other.Key);
        Assert.Equal(5m, (await otherGateway.AccountAsync()).Balance);

        using var signed = GatewaySigner.Client(network.Environment, Rewards);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/account");
        request.Headers.Add(GatewayProof.AccountHeader, other.AccountId);
        using var response = await signed.SendAsync(request);
        Assert.Equal(other.AccountId, (await response.Content.ReadFromJsonAsync<AccountView>(Api.Json))!.AccountId);
    }
}
