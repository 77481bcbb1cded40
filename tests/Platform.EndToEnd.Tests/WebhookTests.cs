using System.Net;
using System.Net.Http.Json;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

/// <summary>Webhooks may reach this machine (a test's receiver), as only a test may let them.</summary>
public sealed class WebhookNetwork : Network
{
    protected override Dictionary<string, string?> ServiceSettings => new()
    {
        ["Webhooks__AllowPrivateAddresses"] = "true",
        ["Webhooks__FirstRetryAfter"] = "00:00:00.200",
        ["Webhooks__PollInterval"] = "00:00:00.100",
    };
}

/// <summary>
/// AccountBalanceLow reaches the account holder: a job's escrow takes a client below the threshold it set, and its
/// webhook, set through the gateway, receives the signed warning, once, while the dashboard's account view says low.
/// </summary>
public sealed class WebhookTests(WebhookNetwork network) : IClassFixture<WebhookNetwork>
{
    [Fact]
    public async Task A_job_that_takes_the_balance_below_the_threshold_sends_the_signed_warning_to_the_accounts_webhook_once()
    {
        await using var receiver = new WebhookReceiver();
        var client = await network.CreateAccountAsync("client", 1m);
        using var http = network.Client(client.Key);
        using var operatorHttp = network.Client(network.Operator.Key);
        // Pinned by the operator, who pins free: the client's only spending is the job.
        var vector = await operatorHttp.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));

        using var set = await http.PutAsJsonAsync("/v1/account/webhook", new { url = receiver.Url });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        var secret = (await set.Content.ReadFromJsonAsync<WebhookView>(Api.Json))!.Secret!;
        using var threshold = await http.PutAsJsonAsync("/v1/account/low-balance", new { threshold = 0.995m });
        Assert.Equal(HttpStatusCode.OK, threshold.StatusCode);
        Assert.Empty(receiver.Requests);

        // The job's escrow of 0.01 takes the balance from 1 to 0.99, below 0.995.
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);

        var warning = await Eventually.UntilAsync(() => Task.FromResult(receiver.Requests.ToList()), r => r.Count > 0, TimeSpan.FromSeconds(60), "the warning at the webhook");
        var received = Assert.Single(warning);
        Assert.True(received.SignedWith(secret), $"signature {received.Signature}");
        Assert.Equal("account.balance_low", received.Json.GetProperty("type").GetString());
        var data = received.Json.GetProperty("data");
        Assert.Equal(client.AccountId, data.GetProperty("accountId").GetString());
        Assert.Equal(0.99m, data.GetProperty("balance").GetDecimal());
        Assert.Equal(0.995m, data.GetProperty("threshold").GetDecimal());
        // Recorded as delivered once the receiver's answer is back, a moment after the receiver saw it.
        var hook = await Eventually.UntilAsync(async () => (await http.GetFromJsonAsync<WebhookView>("/v1/account/webhook", Api.Json))!,
            h => h.Deliveries.Any(d => d.Status != "pending"), TimeSpan.FromSeconds(30), "the delivery recorded");
        Assert.Null(hook.Secret);
        var delivery = Assert.Single(hook.Deliveries);
        Assert.Equal(("account.balance_low", "delivered", 1), (delivery.Type, delivery.Status, delivery.Attempts));
        Assert.True((await http.AccountAsync()).Balance < 0.995m);
    }

    [Fact]
    public async Task An_operator_has_no_webhook_and_a_url_into_the_deployment_is_a_problem_not_a_crash()
    {
        using var operatorHttp = network.Client(network.Operator.Key);
        using var refused = await operatorHttp.PutAsJsonAsync("/v1/account/webhook", new { url = "https://93.184.215.14/hooks" });
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);

        var client = await network.CreateAccountAsync("client", 1m);
        using var http = network.Client(client.Key);
        using var bad = await http.PutAsJsonAsync("/v1/account/webhook", new { url = "gopher://x" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
    }
}
