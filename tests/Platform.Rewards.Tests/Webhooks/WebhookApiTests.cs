using System.Net;
using System.Text;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Rewards.Tests.Webhooks;

/// <summary>
/// /v1/account/webhook on the rewards service running as a real process on real Postgres and RabbitMQ, called as the
/// gateway calls it; deliveries go to a receiver on this machine (private addresses allowed, as only a test may).
/// </summary>
public sealed class WebhookApiTests() : RewardsApiTest("rewards-webhook-api", new Dictionary<string, string?>
{
    ["Webhooks__AllowPrivateAddresses"] = "true",
    ["Webhooks__FirstRetryAfter"] = "00:00:00.200",
    ["Webhooks__PollInterval"] = "00:00:00.100",
})
{
    private Task<HttpResponseMessage> PutAsync(string account, string json) =>
        SendAsync(HttpMethod.Put, "/v1/account/webhook", account, new StringContent(json, Encoding.UTF8, "application/json"));

    private async Task<JsonElement> DeliveryAsync(string account, string type)
    {
        var view = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", account), HttpStatusCode.OK);
        return view.GetProperty("deliveries").EnumerateArray().First(d => d.GetProperty("type").GetString() == type);
    }

    [Fact]
    public async Task A_webhook_is_set_shown_without_its_secret_tested_re_keyed_and_removed()
    {
        await using var receiver = new WebhookReceiver();
        var client = await OpenAsync("client", 100m);
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.NotFound, "webhook-not-set");

        var set = await JsonAsync(await PutAsync(client, $$"""{"url":"{{receiver.Url}}"}"""), HttpStatusCode.OK);
        var secret = set.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", secret);
        Assert.Equal(receiver.Url, set.GetProperty("url").GetString());
        var shown = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.Null, shown.GetProperty("secret").ValueKind);

        var test = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client), HttpStatusCode.Accepted);
        Assert.Equal("webhook.test", test.GetProperty("type").GetString());
        var delivered = await Eventually.UntilAsync(() => DeliveryAsync(client, "webhook.test"), d => d.GetProperty("status").GetString() != "pending",
            TimeSpan.FromSeconds(30), "the test event delivered");
        Assert.Equal("delivered", delivered.GetProperty("status").GetString());
        Assert.Equal(200, delivered.GetProperty("lastStatus").GetInt32());
        var received = Assert.Single(receiver.Requests);
        Assert.Equal(test.GetProperty("id").GetString(), received.Id);
        Assert.True(received.SignedWith(secret));
        Assert.Equal(client, received.Json.GetProperty("data").GetProperty("accountId").GetString());

        // PUT again: a new secret, and the old one no longer signs.
        var rekeyed = (await JsonAsync(await PutAsync(client, $$"""{"url":"{{receiver.Url}}"}"""), HttpStatusCode.OK)).GetProperty("secret").GetString()!;
        Assert.NotEqual(secret, rekeyed);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client), HttpStatusCode.Accepted);
        var second = await Eventually.UntilAsync(() => Task.FromResult(receiver.Requests.ToList()), r => r.Count == 2, TimeSpan.FromSeconds(30), "the second test event");
        Assert.True(second[1].SignedWith(rekeyed));
        Assert.False(second[1].SignedWith(secret));

        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, "/v1/account/webhook", client)).StatusCode);
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.NotFound, "webhook-not-set");
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client), HttpStatusCode.NotFound, "webhook-not-set");
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, "/v1/account/webhook", client)).StatusCode);
    }

    [Fact]
    public async Task A_second_test_while_the_first_is_still_being_retried_is_refused_with_429()
    {
        await using var receiver = new WebhookReceiver(Enumerable.Repeat(503, 100).ToArray());
        var client = await OpenAsync("client", 1m);
        await JsonAsync(await PutAsync(client, $$"""{"url":"{{receiver.Url}}"}"""), HttpStatusCode.OK);

        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client), HttpStatusCode.Accepted);
        await Eventually.UntilAsync(() => Task.FromResult(receiver.Requests.Count), n => n > 0, TimeSpan.FromSeconds(30), "the first test attempted");
        using var again = await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client);

        await JsonAsync(again, HttpStatusCode.TooManyRequests, "webhook-test-pending");
        Assert.NotNull(again.Headers.RetryAfter);
        var pending = await DeliveryAsync(client, "webhook.test");
        Assert.Equal("pending", pending.GetProperty("status").GetString());
        Assert.Single((await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.OK)).GetProperty("deliveries").EnumerateArray());
    }

    [Fact]
    public async Task A_threshold_raised_above_the_balance_sends_the_low_balance_warning_to_the_webhook()
    {
        await using var receiver = new WebhookReceiver();
        var client = await OpenAsync("client", 12.5m);
        var secret = (await JsonAsync(await PutAsync(client, $$"""{"url":"{{receiver.Url}}"}"""), HttpStatusCode.OK)).GetProperty("secret").GetString()!;

        await JsonAsync(await SendAsync(HttpMethod.Put, "/v1/account/low-balance", client, new StringContent("""{"threshold":25}""", Encoding.UTF8, "application/json")),
            HttpStatusCode.OK);

        var delivered = await Eventually.UntilAsync(() => DeliveryAsync(client, "account.balance_low"), d => d.GetProperty("status").GetString() == "delivered",
            TimeSpan.FromSeconds(30), "the warning delivered");
        Assert.Equal(1, delivered.GetProperty("attempts").GetInt32());
        var warning = Assert.Single(receiver.Requests);
        Assert.True(warning.SignedWith(secret));
        var data = warning.Json.GetProperty("data");
        Assert.Equal(client, data.GetProperty("accountId").GetString());
        Assert.Equal(12.5m, data.GetProperty("balance").GetDecimal());
        Assert.Equal(25m, data.GetProperty("threshold").GetDecimal());
    }

    [Fact]
    public async Task A_bad_url_is_refused_naming_it_and_an_operator_has_no_webhook()
    {
        var client = await OpenAsync("client", 1m);
        foreach (var url in new[] { "ftp://93.184.215.14/", "http://user:secret@93.184.215.14/", "/relative", "http://93.184.215.14/#x", "https://" + new string('a', 2050) + ".example/" })
        {
            var refused = await JsonAsync(await PutAsync(client, JsonSerializer.Serialize(new { url })), HttpStatusCode.BadRequest, "validation");
            Assert.True(refused.GetProperty("errors").TryGetProperty("url", out _), url);
        }
        await JsonAsync(await PutAsync(client, "{}"), HttpStatusCode.BadRequest, "validation");
        await JsonAsync(await PutAsync(client, "{"), HttpStatusCode.BadRequest, "malformed-json");

        var operatorAccount = await OpenAsync("operator", 0m);
        await JsonAsync(await PutAsync(operatorAccount, """{"url":"https://93.184.215.14/hooks"}"""), HttpStatusCode.Forbidden, "forbidden");
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", operatorAccount), HttpStatusCode.Forbidden, "forbidden");
    }
}

/// <summary>With the default options, a webhook may only point at a public address.</summary>
public sealed class WebhookPrivateAddressTests() : RewardsApiTest("rewards-webhook-private")
{
    [Fact]
    public async Task A_webhook_into_the_deployment_is_refused_and_a_public_one_is_taken()
    {
        var client = await OpenAsync("client", 1m);
        foreach (var url in new[]
        {
            "http://127.0.0.1:5672/", "http://localhost/hooks", "http://[::1]/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.8/",
            "http://192.168.1.20/", "http://[::ffff:192.168.1.1]/", "http://100.64.0.1/", "http://0.0.0.0/",
        })
        {
            var refused = await JsonAsync(await SendAsync(HttpMethod.Put, "/v1/account/webhook", client, new { url }), HttpStatusCode.BadRequest, "validation");
            Assert.Contains("public", refused.GetProperty("errors").GetProperty("url")[0].GetString(), StringComparison.Ordinal);
        }
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.NotFound, "webhook-not-set");

        var taken = await JsonAsync(await SendAsync(HttpMethod.Put, "/v1/account/webhook", client, new { url = "https://93.184.215.14/hooks" }), HttpStatusCode.OK);
        Assert.Equal("https://93.184.215.14/hooks", taken.GetProperty("url").GetString());
    }
}

/// <summary>A deployment that sends nothing out: webhooks off.</summary>
public sealed class WebhooksDisabledTests() : RewardsApiTest("rewards-webhooks-off", new Dictionary<string, string?> { ["Webhooks__Enabled"] = "false" })
{
    [Fact]
    public async Task Every_webhook_request_is_refused_with_the_reason()
    {
        var client = await OpenAsync("client", 1m);

        await JsonAsync(await SendAsync(HttpMethod.Put, "/v1/account/webhook", client, new { url = "https://93.184.215.14/hooks" }), HttpStatusCode.Forbidden, "webhooks-disabled");
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/webhook", client), HttpStatusCode.Forbidden, "webhooks-disabled");
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/webhook/test", client), HttpStatusCode.Forbidden, "webhooks-disabled");
    }
}
