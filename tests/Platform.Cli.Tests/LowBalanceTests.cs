using System.Text.Json;

namespace Platform.Cli.Tests;

/// <summary>
/// The low-balance threshold in the command line: shown by 'account', set and cleared by 'account low-balance', and
/// warned about by 'jobs submit' before it submits, against a fake gateway on a real port that answers the account
/// it is given and records what it was sent.
/// </summary>
public sealed class LowBalanceTests : IDisposable
{
    private const string InputCid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    private const string Banner = "your balance 12.5 is below your warning threshold of 25: top up or lower the threshold before jobs are rejected for insufficient credits";

    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("platform-cli-lowbal-");
    private readonly CannedGateway _gateway;
    private volatile string? _account;

    public LowBalanceTests() => _gateway = new CannedGateway(Answer);

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
    public async Task Account_shows_the_threshold_and_warns_while_the_balance_is_below_it()
    {
        _account = Account(12.5m, 25m, low: true);

        var run = await RunAsync("account");

        Assert.Equal(0, run.Code);
        Assert.Matches(@"low-balance threshold\s+25\s", run.Out);
        Assert.Contains("warning: " + Banner, run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("warning", run.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Account_without_a_threshold_says_none_and_does_not_warn()
    {
        _account = Account(12.5m, null, low: false);

        var run = await RunAsync("account");

        Assert.Equal(0, run.Code);
        Assert.Matches(@"low-balance threshold\s+none\s", run.Out);
        Assert.Empty(run.Err);
    }

    [Fact]
    public async Task Low_balance_sets_the_threshold_with_a_PUT_and_clear_sends_null()
    {
        _account = Account(12.5m, 25m, low: true);

        var set = await RunAsync("account", "low-balance", "25");
        var cleared = await RunAsync("account", "low-balance", "--clear");

        Assert.Equal(0, set.Code);
        Assert.Equal(0, cleared.Code);
        Assert.Equal(["""{"threshold":25}""", """{"threshold":null}"""], _gateway.Received("PUT /v1/account/low-balance"));
    }

    [Fact]
    public async Task Low_balance_needs_a_threshold_or_clear_and_not_both()
    {
        _account = Account(12.5m, null, low: false);

        var neither = await RunAsync("account", "low-balance");
        var both = await RunAsync("account", "low-balance", "25", "--clear");

        Assert.NotEqual(0, neither.Code);
        Assert.NotEqual(0, both.Code);
        Assert.Contains("give a THRESHOLD or --clear", neither.Err, StringComparison.Ordinal);
        Assert.Empty(_gateway.Received("PUT /v1/account/low-balance"));
    }

    [Fact]
    public async Task Submit_below_the_threshold_warns_on_stderr_and_still_submits()
    {
        _account = Account(12.5m, 25m, low: true);

        var run = await RunAsync("jobs", "submit", "vector-add", "-i", $"a={InputCid}", "-i", $"b={InputCid}");

        Assert.Equal(0, run.Code);
        Assert.Equal("job_lowbal", run.Out.Trim());
        Assert.Contains("warning: " + Banner, run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("maxPrice", run.Err, StringComparison.Ordinal);
        Assert.Single(_gateway.Received("POST /v1/jobs"));
    }

    [Fact]
    public async Task Submit_with_a_max_price_above_the_balance_warns_that_it_may_be_rejected_and_still_submits()
    {
        _account = Account(12.5m, null, low: false);

        var run = await RunAsync("jobs", "submit", "vector-add", "-i", $"a={InputCid}", "-i", $"b={InputCid}", "--max-price", "40");

        Assert.Equal(0, run.Code);
        Assert.Contains("warning: this job may be rejected for insufficient credits: balance 12.5, maxPrice 40", run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("threshold", run.Err, StringComparison.Ordinal);
        Assert.Single(_gateway.Received("POST /v1/jobs"));
    }

    [Fact]
    public async Task Submit_with_enough_credits_says_nothing_and_one_without_an_account_view_submits_anyway()
    {
        _account = Account(100m, 25m, low: false);
        var funded = await RunAsync("jobs", "submit", "vector-add", "-i", $"a={InputCid}", "-i", $"b={InputCid}", "--max-price", "40");
        _account = null;
        var unknown = await RunAsync("jobs", "submit", "vector-add", "-i", $"a={InputCid}", "-i", $"b={InputCid}");

        Assert.Equal(0, funded.Code);
        Assert.DoesNotContain("warning", funded.Err, StringComparison.Ordinal);
        Assert.Equal(0, unknown.Code);
        Assert.DoesNotContain("warning", unknown.Err, StringComparison.Ordinal);
        Assert.Equal(2, _gateway.Received("POST /v1/jobs").Count);
    }

    private static string Account(decimal balance, decimal? threshold, bool low) => JsonSerializer.Serialize(new
    {
        accountId = "acc_lowbal",
        role = "client",
        balance,
        escrowed = 0m,
        earned = 0m,
        staked = 0m,
        lowBalanceThreshold = threshold,
        lowBalance = low,
    });

    /// <summary>
    /// GET /v1/account and PUT /v1/account/low-balance answer <see cref="_account"/> (404 problem when null);
    /// POST /v1/jobs answers a queued job.
    /// </summary>
    private CannedAnswer Answer(string route, string body) => route switch
    {
        "GET /v1/account" or "PUT /v1/account/low-balance" when _account is { } account => CannedAnswer.Json(account),
        "GET /v1/account" or "PUT /v1/account/low-balance" => CannedAnswer.Problem(404,
            """{"type":"urn:platform:problem:account-not-found","title":"Account not found","status":404,"detail":"this account has no ledger entries yet"}"""),
        "POST /v1/jobs" => new CannedAnswer(202, "application/json",
            """{"id":"job_lowbal","kernel":"vector-add","status":"pending","inputs":{},"params":{},"outputs":null,"attempts":[],"createdAt":"2026-01-02T03:04:05+00:00"}"""),
        _ => CannedAnswer.NotFound,
    };
}
