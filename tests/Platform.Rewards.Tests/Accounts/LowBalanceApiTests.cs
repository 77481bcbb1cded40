using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Testing;

namespace Platform.Rewards.Tests.Accounts;

/// <summary>
/// PUT /v1/account/low-balance and the threshold in GET /v1/account, on the rewards service running as a real
/// process on real Postgres and RabbitMQ, called as the gateway calls it (the account in X-Platform-Account, with its proof).
/// </summary>
public sealed class LowBalanceApiTests() : RewardsApiTest("rewards-low-balance-api")
{
    private Task<HttpResponseMessage> PutAsync(string account, string json) =>
        SendAsync(HttpMethod.Put, "/v1/account/low-balance", account, new StringContent(json, Encoding.UTF8, "application/json"));

    private async Task<int> WarningsAsync(string account)
    {
        await using var connection = await Db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<int>(
            "select count(*) from outbox where message_type = @type and body->>'accountId' = @account", new { type = typeof(AccountBalanceLow).FullName, account });
    }

    [Fact]
    public async Task A_new_account_has_no_threshold_and_setting_and_clearing_one_shows_in_the_account()
    {
        var client = await OpenAsync("client", 100m);

        var fresh = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", client), HttpStatusCode.OK);
        var set = await JsonAsync(await PutAsync(client, """{"threshold":25.5}"""), HttpStatusCode.OK);
        var read = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", client), HttpStatusCode.OK);
        var cleared = await JsonAsync(await PutAsync(client, """{"threshold":null}"""), HttpStatusCode.OK);
        await JsonAsync(await PutAsync(client, """{"threshold":30}"""), HttpStatusCode.OK);
        var absent = await JsonAsync(await PutAsync(client, "{}"), HttpStatusCode.OK);

        Assert.Equal(JsonValueKind.Null, fresh.GetProperty("lowBalanceThreshold").ValueKind);
        Assert.False(fresh.GetProperty("lowBalance").GetBoolean());
        Assert.Equal(25.5m, set.GetProperty("lowBalanceThreshold").GetDecimal());
        Assert.Equal(100m, set.GetProperty("balance").GetDecimal());
        Assert.False(set.GetProperty("lowBalance").GetBoolean());
        Assert.Equal(25.5m, read.GetProperty("lowBalanceThreshold").GetDecimal());
        Assert.Equal(JsonValueKind.Null, cleared.GetProperty("lowBalanceThreshold").ValueKind);
        Assert.Equal(JsonValueKind.Null, absent.GetProperty("lowBalanceThreshold").ValueKind);
        Assert.Equal(0, await WarningsAsync(client));
    }

    [Fact]
    public async Task A_threshold_raised_above_the_balance_is_a_crossing_that_warns_once()
    {
        var client = await OpenAsync("client", 12.5m);

        var low = await JsonAsync(await PutAsync(client, """{"threshold":25}"""), HttpStatusCode.OK);
        // Already below: raising it further, or setting it again, warns no more.
        await JsonAsync(await PutAsync(client, """{"threshold":30}"""), HttpStatusCode.OK);
        await JsonAsync(await PutAsync(client, """{"threshold":30}"""), HttpStatusCode.OK);
        var account = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", client), HttpStatusCode.OK);

        Assert.True(low.GetProperty("lowBalance").GetBoolean());
        Assert.True(account.GetProperty("lowBalance").GetBoolean());
        Assert.Equal(30m, account.GetProperty("lowBalanceThreshold").GetDecimal());
        Assert.Equal(1, await WarningsAsync(client));

        // Lowered below the balance, then raised above it again: a new crossing.
        await JsonAsync(await PutAsync(client, """{"threshold":10}"""), HttpStatusCode.OK);
        await JsonAsync(await PutAsync(client, """{"threshold":20}"""), HttpStatusCode.OK);
        Assert.Equal(2, await WarningsAsync(client));
        // The relay sends them.
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await Db.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from outbox where message_type = @type and sent_at is null", new { type = typeof(AccountBalanceLow).FullName }) == 0;
        }, TimeSpan.FromSeconds(30), "the AccountBalanceLow messages to be published");
    }

    [Theory]
    [InlineData("""{"threshold":-1}""", "validation")]
    [InlineData("""{"threshold":1.0000001}""", "validation")]
    [InlineData("""{"threshold":"lots"}""", "malformed-json")]
    [InlineData("""[1]""", "malformed-json")]
    public async Task Bad_thresholds_are_400_problems_and_change_nothing(string body, string problem)
    {
        var client = await OpenAsync("client", 10m);
        await JsonAsync(await PutAsync(client, """{"threshold":5}"""), HttpStatusCode.OK);

        await JsonAsync(await PutAsync(client, body), HttpStatusCode.BadRequest, problem);

        var account = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", client), HttpStatusCode.OK);
        Assert.Equal(5m, account.GetProperty("lowBalanceThreshold").GetDecimal());
    }

    [Fact]
    public async Task Operators_may_not_set_one_and_unknown_accounts_are_404()
    {
        var operatorAccount = await OpenAsync("operator", 10m);

        await JsonAsync(await PutAsync(operatorAccount, """{"threshold":5}"""), HttpStatusCode.Forbidden, "forbidden");
        await JsonAsync(await PutAsync(AccountId.New().Value, """{"threshold":5}"""), HttpStatusCode.NotFound, "account-not-found");
        await JsonAsync(await SendAsync(HttpMethod.Put, "/v1/account/low-balance", operatorAccount, JsonContent.Create(new { threshold = 5 })), HttpStatusCode.Forbidden, "forbidden");
    }
}
