using System.Net;
using System.Net.Http.Json;
using System.Text;
using Dapper;
using Platform.Hosting.Http;
using Platform.Rewards.Ledger;
using Platform.Testing;

namespace Platform.Rewards.Tests.Accounts;

/// <summary>
/// The rewards process called directly, as a stranger who reaches its port would: an account named without the
/// gateway's proof, or with a proof made for another request, gets a 401 problem and nothing of the account.
/// </summary>
public sealed class GatewayProofApiTests() : RewardsApiTest("rewards-gateway-proof")
{
    private static readonly (string Method, string Path, object? Body)[] AccountRoutes =
    [
        ("GET", "/v1/account", null),
        ("GET", "/v1/account/ledger", null),
        ("GET", "/v1/account/earnings", null),
        ("PUT", "/v1/account/low-balance", new { threshold = 1000 }),
        ("POST", "/v1/account/stake", new { amount = 5 }),
        ("POST", "/v1/account/unstake", new { amount = 5 }),
    ];

    private async Task<HttpResponseMessage> DirectAsync(string method, string path, string? account, string? proof, object? body = null)
    {
        using var http = new HttpClient { BaseAddress = RewardsUrl };
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (account is not null)
            request.Headers.Add(GatewayProof.AccountHeader, account);
        if (proof is not null)
            request.Headers.Add(GatewayProof.Header, proof);
        if (body is not null)
            request.Content = JsonContent.Create(body);
        return await http.SendAsync(request);
    }

    private string ProofFor(string method, string pathAndQuery, string account, long? timestamp = null, string? secret = null) =>
        GatewayProof.Sign(Encoding.UTF8.GetBytes(secret ?? Env.GatewaySecret), method, pathAndQuery, account, timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds());

    private static readonly string[] ProblemFields = ["type", "title", "status", "detail", "instance", "traceId"];

    /// <summary>A 401 gateway-proof-required problem that says nothing of the account.</summary>
    private static async Task AssertRefusedAsync(HttpResponseMessage response, string? account = null)
    {
        var json = await JsonAsync(response, HttpStatusCode.Unauthorized, GatewayProofEndpoints.ProblemSlug);
        Assert.All(json.EnumerateObject(), p => Assert.Contains(p.Name, ProblemFields));
        if (account is not null)
            Assert.DoesNotContain(account, json.GetRawText(), StringComparison.Ordinal);
    }

    private async Task<(decimal Balance, decimal? Threshold, int Postings)> StateAsync(string account)
    {
        await using var connection = await Db.OpenConnectionAsync();
        return await connection.QuerySingleAsync<(decimal, decimal?, int)>(
            "select balance, low_balance_threshold, (select count(*)::int from postings where account_id in (@account, @stake)) from accounts where id = @account",
            new { account, stake = CreditLedger.StakeOf(account) });
    }

    [Fact]
    public async Task A_forged_account_header_without_proof_gets_401_on_every_account_route_and_changes_nothing()
    {
        var victim = await OpenAsync("operator", 100m);
        var client = await OpenAsync("client", 100m);
        var before = (await StateAsync(victim), await StateAsync(client));

        foreach (var account in new[] { victim, client })
        {
            foreach (var (method, path, body) in AccountRoutes)
                await AssertRefusedAsync(await DirectAsync(method, path, account, proof: null, body), account);
        }

        Assert.Equal(before, (await StateAsync(victim), await StateAsync(client)));
        // The same request with the gateway's proof is answered: the refusal was the missing proof.
        var answered = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", victim), HttpStatusCode.OK);
        Assert.Equal(victim, answered.GetProperty("accountId").GetString());
    }

    [Fact]
    public async Task A_valid_proof_is_answered_for_its_own_account()
    {
        var account = await OpenAsync("operator", 40m);

        var response = await DirectAsync("GET", "/v1/account/ledger?limit=1", account, ProofFor("GET", "/v1/account/ledger?limit=1", account));

        var page = await JsonAsync(response, HttpStatusCode.OK);
        Assert.Equal(account, Assert.Single(page.GetProperty("entries").EnumerateArray()).GetProperty("accountId").GetString());
    }

    [Fact]
    public async Task A_proof_replayed_for_another_path_query_method_or_account_gets_401()
    {
        var attacker = await OpenAsync("operator", 10m);
        var victim = await OpenAsync("operator", 100m);
        var proof = ProofFor("GET", "/v1/account/ledger?limit=1", attacker);

        await AssertRefusedAsync(await DirectAsync("GET", "/v1/account/ledger?limit=1", victim, proof), victim);
        await AssertRefusedAsync(await DirectAsync("GET", "/v1/account/ledger?limit=2", attacker, proof));
        await AssertRefusedAsync(await DirectAsync("GET", "/v1/account/earnings", attacker, proof));
        await AssertRefusedAsync(await DirectAsync("GET", "/v1/account", attacker, proof));
        await AssertRefusedAsync(await DirectAsync("POST", "/v1/account/stake", attacker, ProofFor("GET", "/v1/account/stake", attacker), new { amount = 5 }));
        Assert.Equal(10m, (await StateAsync(attacker)).Balance);
        // The proof itself was good: for its own request it is answered.
        await JsonAsync(await DirectAsync("GET", "/v1/account/ledger?limit=1", attacker, proof), HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_stale_future_wrongly_keyed_or_malformed_proof_gets_401()
    {
        var account = await OpenAsync("client", 10m);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var valid = ProofFor("GET", "/v1/account", account);

        foreach (var proof in new[]
                 {
                     ProofFor("GET", "/v1/account", account, now - 120),
                     ProofFor("GET", "/v1/account", account, now + 120),
                     ProofFor("GET", "/v1/account", account, secret: "another-secret-that-is-long-enough-0123456789"),
                     "",
                     "v1",
                     valid.Replace("v1.", "v2.", StringComparison.Ordinal),
                     valid[..^1],
                     valid + "A",
                     $"v1.{now}.{new string('A', 43)}",
                 })
            await AssertRefusedAsync(await DirectAsync("GET", "/v1/account", account, proof), account);
        // Two account headers: which one the proof is for is not the service's to guess.
        using var http = new HttpClient { BaseAddress = RewardsUrl };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/account");
        request.Headers.Add(GatewayProof.AccountHeader, [account, account]);
        request.Headers.Add(GatewayProof.Header, valid);
        await AssertRefusedAsync(await http.SendAsync(request), account);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("shorter-than-32-characters")]
    public async Task Rewards_does_not_start_without_a_long_enough_gateway_secret(string? secret)
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => ServiceProcess.StartAsync("rewards", Env,
            new Dictionary<string, string?> { ["Platform__GatewaySecret"] = secret }));
        Assert.Contains("exited with code", failure.Message, StringComparison.Ordinal);
        Assert.Contains("Platform:GatewaySecret", failure.Message, StringComparison.Ordinal);
    }
}
