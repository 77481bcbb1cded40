namespace Platform.Cli.Tests;

/// <summary>
/// 'account webhook': shows the webhook and its deliveries, sets a URL (printing the secret, once), sends a test event
/// and removes it, against a fake gateway on a real port that records what it was sent.
/// </summary>
public sealed class WebhookCommandTests : IDisposable
{
    private const string Url = "https://hooks.example.org/platform";
    private const string Delivery = """
        {"id":"msg_1f0c","type":"account.balance_low","status":"pending","attempts":2,"lastStatus":503,"lastError":"the receiver answered 503",
         "createdAt":"2026-12-05T10:00:00Z","nextAttemptAt":"2026-12-05T10:00:20Z","deliveredAt":null}
        """;

    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("platform-cli-webhook-");
    private readonly CannedGateway _gateway = new((route, _) => route switch
    {
        "GET /v1/account/webhook" => CannedAnswer.Json($$"""{"url":"{{Url}}","createdAt":"2026-12-05T09:00:00Z","deliveries":[{{Delivery}}],"secret":null}"""),
        "PUT /v1/account/webhook" => CannedAnswer.Json($$"""{"url":"{{Url}}","createdAt":"2026-12-05T09:00:00Z","deliveries":[],"secret":"whsec_c2VjcmV0"}"""),
        "DELETE /v1/account/webhook" => new CannedAnswer(204, "application/json", ""),
        "POST /v1/account/webhook/test" => new CannedAnswer(202, "application/json", Delivery.Replace("account.balance_low", "webhook.test", StringComparison.Ordinal)),
        _ => CannedAnswer.NotFound,
    });

    public void Dispose()
    {
        _gateway.Dispose();
        _home.Delete(recursive: true);
    }

    private sealed record Run(int Code, string Out, string Err);

    private async Task<Run> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = _gateway.Url, ["PLATFORM_KEY"] = "pk_test", ["HOME"] = _home.FullName };
        var code = await Cli.RunAsync(args, CliHost.Plain(stdout, stderr, env));
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Webhook_with_a_url_puts_it_and_prints_the_secret_once()
    {
        var run = await RunAsync("account", "webhook", Url);

        Assert.Equal(0, run.Code);
        Assert.Equal([$$"""{"url":"{{Url}}"}"""], _gateway.Received("PUT /v1/account/webhook"));
        Assert.Contains("signing secret (shown this once", run.Out, StringComparison.Ordinal);
        Assert.Contains("whsec_c2VjcmV0", run.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Webhook_alone_shows_the_url_and_each_delivery_with_why_it_failed()
    {
        var run = await RunAsync("account", "webhook");

        Assert.Equal(0, run.Code);
        Assert.Matches(@"url\s+https://hooks.example.org/platform", run.Out);
        Assert.Contains("account.balance_low", run.Out, StringComparison.Ordinal);
        Assert.Contains("the receiver answered 503", run.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", run.Out, StringComparison.Ordinal);
        Assert.Empty(_gateway.Received("PUT /v1/account/webhook"));
    }

    [Fact]
    public async Task Test_and_clear_post_the_test_event_and_delete_the_webhook()
    {
        var tested = await RunAsync("account", "webhook", "--test");
        var cleared = await RunAsync("account", "webhook", "--clear");

        Assert.Equal(0, tested.Code);
        Assert.Contains("test event msg_1f0c queued", tested.Out, StringComparison.Ordinal);
        Assert.Single(_gateway.Received("POST /v1/account/webhook/test"));
        Assert.Equal(0, cleared.Code);
        Assert.Single(_gateway.Received("DELETE /v1/account/webhook"));
    }

    [Fact]
    public async Task More_than_one_of_url_test_and_clear_is_a_usage_error_and_sends_nothing()
    {
        var run = await RunAsync("account", "webhook", Url, "--clear");

        Assert.Equal(2, run.Code);
        Assert.Contains("one at a time", run.Err, StringComparison.Ordinal);
        Assert.Empty(_gateway.Received("PUT /v1/account/webhook"));
        Assert.Empty(_gateway.Received("DELETE /v1/account/webhook"));
    }
}
