using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;
using Platform.EndToEnd.Tests;
using Platform.Testing;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>The dashboard the gateway serves at /, driven in a real browser against a real network.</summary>
public sealed partial class DashboardTests : IClassFixture<BrowserNetwork>
{
    // A job on the two-core test machine takes seconds; the deadline allows for a slow, busy run.
    private static readonly float JobTimeout = 120_000;

    private readonly BrowserNetwork network;
    private readonly ITestOutputHelper output;

    public DashboardTests(BrowserNetwork network, ITestOutputHelper output)
    {
        this.network = network;
        this.output = output;
        // Every expectation polls the page until it holds or this deadline passes.
        SetDefaultExpectTimeout(30_000);
    }

    [Fact]
    public async Task The_network_view_shows_the_live_network_without_a_key()
    {
        await WithPageAsync("network", async page =>
        {
            await page.GotoAsync("/");
            await Expect(page.Locator("[data-stat=workersOnline]")).ToHaveTextAsync("1");
            await Expect(page.Locator("[data-stat=workersOffline]")).ToHaveTextAsync("0");
            await Expect(page.Locator("[data-stat=load]")).ToHaveTextAsync(NumberWithUnit());
            await Expect(page.Locator("[data-stat=bytesPinned]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]* (B|KiB|MiB|GiB)$"));
            await Expect(page.Locator("[data-stat=blobsPinned]")).ToHaveTextAsync(new Regex(@"^\d[\d,]*$"));
            await Expect(page.Locator("[data-stat=creditsMinted]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]*$"));
            // The region chart draws a bar for the worker's region, and the node is listed.
            await Expect(page.Locator("#chart-regions canvas")).ToHaveAttributeAsync("aria-label", "local: 1");
            var regions = await ChartDataAsync(page, "#chart-regions");
            Assert.Equal([1.0], regions);
            await Expect(page.Locator("#workers tbody tr[data-worker]")).ToHaveCountAsync(1);
            await Expect(page.Locator("#workers tbody tr[data-worker] .badge")).ToHaveTextAsync("online");
            // The queue chart plots the scheduler's samples (one a second here): the online node's slot among them.
            var slots = (await network.Client(null).GetFromJsonAsync<NetworkView>("/v1/network", Api.Json))!.Slots;
            await Expect(page.Locator("#chart-queue")).ToHaveAttributeAsync("data-points", Plotted());
            Assert.Contains((double)slots, await ChartDataAsync(page, "#chart-queue", series: 2));
            await AssertPaintedAsync(page, "#chart-queue");
            // Signed out, only the network is offered.
            await Expect(page.Locator("nav a[data-view=client]")).ToBeHiddenAsync();
            await Expect(page.Locator("nav a[data-view=operator]")).ToBeHiddenAsync();
        });
    }

    [Fact]
    public async Task A_client_submits_a_vector_add_through_the_form_and_watches_it_complete_live()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        float[] a = [1f, 2f, 3f, 4f, 5f];
        float[] b = [10f, 20f, 30f, 40f, 50f];

        await WithPageAsync("client", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            await Expect(page.Locator("#view-client")).ToBeVisibleAsync();
            await Expect(page.Locator("[data-account=balance]")).ToHaveTextAsync("100");

            await page.SelectOptionAsync("#job-kernel", "vector-add");
            // A bad input is refused by the gateway, and the page says why in the problem's own words.
            await page.FillAsync("#input-a-cid", "not-a-cid");
            await page.FillAsync("#input-b-cid", "not-a-cid");
            await page.ClickAsync("#submit-job button[type=submit]");
            await Expect(page.Locator("#alert")).ToContainTextAsync("is not a CIDv1 raw sha2-256 base32 CID");
            await page.ClickAsync("#alert-close");

            // The real thing: two .npy files, pinned by the page, then the job.
            await page.FillAsync("#input-a-cid", "");
            await page.FillAsync("#input-b-cid", "");
            await page.SetInputFilesAsync("#input-a-file", Npy("a.npy", a));
            await page.SetInputFilesAsync("#input-b-file", Npy("b.npy", b));
            await page.ClickAsync("#submit-job button[type=submit]");
            await Expect(page.Locator("#input-a-cid")).ToHaveValueAsync(new Regex("^bafkrei"));
            await Expect(page.Locator("#job-detail")).ToBeVisibleAsync();
            var jobId = await page.Locator("#job-id").TextContentAsync();
            Assert.StartsWith("job_", jobId);

            // The status follows the job's event stream: the completed change arrives as an event and is listed.
            await Expect(page.Locator("#job-status")).ToHaveTextAsync("completed", new() { Timeout = JobTimeout });
            await Expect(page.Locator("#job-events li[data-status=completed]")).ToHaveCountAsync(1);
            await Expect(page.Locator("#job-events li[data-status=running]")).Not.ToHaveCountAsync(0);
            await Expect(page.Locator($"#jobs tr[data-job='{jobId}'] [data-status]")).ToHaveTextAsync("completed");
            // Its energy: the joules of the accepted attempt, measured or estimated, and per GFLOP.
            await Expect(page.Locator("#job-energy")).ToHaveTextAsync(JobEnergy());
            await Expect(page.Locator($"#jobs tr[data-job='{jobId}'] td[data-energy]")).ToHaveTextAsync(JobEnergy());

            // The output downloads with the key and holds a + b.
            var link = page.Locator("#job-outputs a[data-output=c]");
            await Expect(link).ToBeVisibleAsync();
            var download = await page.RunAndWaitForDownloadAsync(() => link.ClickAsync());
            Assert.Equal($"{jobId}-c.npy", download.SuggestedFilename);
            var sum = Platform.Contracts.Tensors.Npy.Read(await File.ReadAllBytesAsync((await download.PathAsync())!));
            Assert.Equal(a.Zip(b, (x, y) => x + y), sum.Float32!);

            // The money moved: the job was paid for out of the balance, and the ledger shows what for.
            await Expect(page.Locator("[data-account=balance]")).Not.ToHaveTextAsync("100");
            await Expect(page.Locator($"#ledger tbody tr[data-job='{jobId}']")).Not.ToHaveCountAsync(0);
            await Expect(page.Locator("#alert")).ToBeHiddenAsync();
        },
        Refused(400, "Bad Request", "/v1/jobs", "the test submits 'not-a-cid' inputs on purpose"),
        Reported("the job is not valid", "the page shows the refusal, and its report() logs what it shows"));
    }

    [Fact]
    public async Task A_client_sets_a_low_balance_threshold_above_its_balance_and_the_banner_warns_until_it_is_cleared()
    {
        var client = await network.CreateAccountAsync("client", 12.5m);
        await WithPageAsync("low-balance", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            await Expect(page.Locator("[data-account=balance]")).ToHaveTextAsync("12.5");
            await Expect(page.Locator("[data-account=threshold]")).ToHaveTextAsync("not set");
            await Expect(page.Locator("#low-balance-banner")).ToBeHiddenAsync();

            await page.FillAsync("#low-balance-threshold", "25");
            await page.ClickAsync("#low-balance-form button[type=submit]");
            var banner = page.Locator("#low-balance-banner");
            await Expect(banner).ToBeVisibleAsync();
            await Expect(banner).ToHaveTextAsync("Your balance 12.5 is below your warning threshold of 25: " +
                "top up or lower the threshold before jobs are rejected for insufficient credits");
            await Expect(page.Locator("[data-account=threshold]")).ToHaveTextAsync("25");
            // The threshold is the account's, not the page's: a reload still warns.
            await page.ReloadAsync();
            await Expect(banner).ToBeVisibleAsync();

            await page.ClickAsync("#low-balance-clear");
            await Expect(banner).ToBeHiddenAsync();
            await Expect(page.Locator("[data-account=threshold]")).ToHaveTextAsync("not set");
            await Expect(page.Locator("#alert")).ToBeHiddenAsync();
        });
    }

    [Fact]
    public async Task A_client_sets_a_webhook_for_the_warning_sees_its_secret_once_and_removes_it()
    {
        var client = await network.CreateAccountAsync("client", 5m);
        await WithPageAsync("webhook", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            await Expect(page.Locator("[data-account=webhook]")).ToHaveTextAsync("none");

            // A public address (nothing is sent to it: no warning is due); one into the deployment is refused.
            await page.FillAsync("#webhook-url", "http://169.254.169.254/latest/meta-data/");
            await page.ClickAsync("#webhook-form button[type=submit]");
            await Expect(page.Locator("#alert")).ToContainTextAsync("is not a public address");
            await page.ClickAsync("#alert-close");
            await page.FillAsync("#webhook-url", "https://93.184.215.14/hooks/platform");
            await page.ClickAsync("#webhook-form button[type=submit]");
            await Expect(page.Locator("#webhook-secret")).ToContainTextAsync(new Regex("shown this once .*: whsec_[A-Za-z0-9+/=]{32}$"));
            await Expect(page.Locator("[data-account=webhook]")).ToHaveTextAsync("93.184.215.14");
            await Expect(page.Locator("[data-account=webhook]")).ToHaveAttributeAsync("title", "https://93.184.215.14/hooks/platform");
            // The secret is not the page's to keep: a reload shows the webhook, not its secret.
            await page.ReloadAsync();
            await Expect(page.Locator("[data-account=webhook]")).ToHaveTextAsync("93.184.215.14");
            await Expect(page.Locator("#webhook-secret")).ToBeHiddenAsync();

            await page.ClickAsync("#webhook-clear");
            await Expect(page.Locator("[data-account=webhook]")).ToHaveTextAsync("none");
            await Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Webhook removed.");
        },
        Refused(400, "Bad Request", "/v1/account/webhook", "the test sets a link-local webhook on purpose"),
        Reported("the webhook URL cannot be used", "the page shows the refusal, and its report() logs what it shows"));
    }

    [Fact]
    public async Task The_submit_form_offers_exactly_the_kernel_catalogue()
    {
        var client = await network.CreateAccountAsync("client", 1m);
        await WithPageAsync("catalogue", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            // The form reads the catalogue from GET /v1/kernels: the one the workers run, description and shape rule included.
            await Expect(page.Locator("#job-kernel option")).ToHaveCountAsync(KernelCatalog.Names.Count);
            Assert.Equal(KernelCatalog.Names, await page.Locator("#job-kernel option").AllTextContentsAsync());
            foreach (var kernel in KernelCatalog.Definitions)
            {
                await page.SelectOptionAsync("#job-kernel", kernel.Name);
                await Expect(page.Locator("#job-kernel-help")).ToHaveTextAsync($"{kernel.Description}; {kernel.Shapes}");
                var inputs = await page.Locator("#job-inputs [data-input]").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.input)");
                Assert.Equal(kernel.Inputs, inputs);
                var placeholder = await page.Locator("#job-params").GetAttributeAsync("placeholder");
                foreach (var parameter in kernel.Parameters)
                    Assert.Contains($"{parameter.Name}={parameter.Default}", placeholder, StringComparison.Ordinal);
            }
        });
    }

    [Fact]
    public async Task An_operator_sees_its_node_and_its_stake()
    {
        var workers = await Eventually.UntilAsync(
            async () => (await network.Client(null).GetFromJsonAsync<List<WorkerRow>>("/v1/workers", Api.Json))!,
            list => list.Any(w => w.OperatorAccountId == network.Operator.AccountId && w.Online),
            TimeSpan.FromSeconds(30), "the operator's worker to be online");
        var workerId = workers.First(w => w.OperatorAccountId == network.Operator.AccountId).WorkerId;

        await WithPageAsync("operator", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, network.Operator.Key);
            await Expect(page.Locator("#view-operator")).ToBeVisibleAsync();
            var row = page.Locator($"#nodes tr[data-worker='{workerId}']");
            await Expect(row).ToBeVisibleAsync();
            await Expect(row.Locator(".badge")).ToHaveTextAsync("online");
            await Expect(row).ToContainTextAsync("local");
            await Expect(page.Locator("#nodes tbody tr[data-worker]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-operator=staked]")).ToHaveTextAsync(Network.OperatorStake.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await Expect(page.Locator("#stake-note")).ToBeHiddenAsync();
            // An operator submits no jobs: the jobs view is not offered.
            await Expect(page.Locator("nav a[data-view=client]")).ToBeHiddenAsync();
        });
    }

    [Fact]
    public async Task A_wrong_key_is_refused_with_the_problem_detail_and_signing_out_forgets_the_key()
    {
        var client = await network.CreateAccountAsync("client", 1m);
        await WithPageAsync("sign-in", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, "pk_not_a_real_key");
            await Expect(page.Locator("#alert")).ToContainTextAsync("send 'Authorization: Bearer <api key>' with a key issued by an admin");
            await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
            Assert.Null(await StoredKeyAsync(page));

            await SignInAsync(page, client.Key);
            await Expect(page.Locator("#alert")).ToBeHiddenAsync();
            await Expect(page.Locator("#who")).ToContainTextAsync(client.AccountId);
            Assert.Equal(client.Key, await StoredKeyAsync(page));
            // The key survives a reload of the tab.
            await page.ReloadAsync();
            await Expect(page.Locator("#view-client")).ToBeVisibleAsync();

            await page.ClickAsync("#sign-out");
            await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
            await Expect(page.Locator("#view-network")).ToBeVisibleAsync();
            await Expect(page.Locator("nav a[data-view=client]")).ToBeHiddenAsync();
            Assert.Null(await StoredKeyAsync(page));
        },
        Refused(401, "Unauthorized", "/v1/account", "the test signs in with a key that is not one on purpose"),
        Reported("send 'Authorization: Bearer <api key>'", "the page shows the refusal, and its report() logs what it shows"));
    }

    [Fact]
    public async Task Without_the_ledger_and_earnings_endpoints_the_views_say_so_and_work_on()
    {
        var client = await network.CreateAccountAsync("client", 1m);
        await WithPageAsync("degraded", async page =>
        {
            // A gateway from before these endpoints existed answers 404 with a problem.
            await page.RouteAsync(new Regex("/v1/account/(ledger|earnings)"), route => route.FulfillAsync(new()
            {
                Status = 404,
                ContentType = "application/problem+json",
                Body = """{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.5","title":"Not Found","status":404}""",
            }));
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            await Expect(page.Locator("#ledger-note")).ToContainTextAsync("does not serve the ledger");
            await Expect(page.Locator("[data-account=balance]")).ToHaveTextAsync("1");
            await page.ClickAsync("#sign-out");

            await SignInAsync(page, network.Operator.Key);
            await Expect(page.Locator("#earnings-note")).ToContainTextAsync("does not serve earnings");
            await Expect(page.Locator("#nodes tbody tr[data-worker]")).ToHaveCountAsync(1);
            await Expect(page.Locator("#alert")).ToBeHiddenAsync();
        },
        Refused(404, "Not Found", "/v1/account/ledger?limit=50", "the test stands in a gateway without the ledger endpoint"),
        Refused(404, "Not Found", "/v1/account/earnings", "the test stands in a gateway without the earnings endpoint"));
    }

    /// <summary>Chromium's error for a request answered with <paramref name="status"/>, at <paramref name="path"/>.</summary>
    private ExpectedBrowserError Refused(int status, string reason, string path, string why) => new(
        $@"^Failed to load resource: the server responded with a status of {status} \({Regex.Escape(reason)}\) at {Regex.Escape(new Uri(network.Gateway.BaseUrl, path).ToString())}:\d+:\d+$", why);

    /// <summary>The dashboard's own console.error of a refusal it reports (app.js report()): an ApiError with the problem's words.</summary>
    private static ExpectedBrowserError Reported(string detail, string why) => new($"^ApiError: {Regex.Escape(detail)}", why);

    private sealed record WorkerRow(string WorkerId, string OperatorAccountId, bool Online);

    private static Task<string?> StoredKeyAsync(IPage page) => page.EvaluateAsync<string?>("() => sessionStorage.getItem('platform.apiKey')");

    internal static async Task SignInAsync(IPage page, string key)
    {
        await page.FillAsync("#api-key", key);
        await page.ClickAsync("#sign-in button[type=submit]");
    }

    internal static FilePayload Npy(string name, float[] values) => new()
    {
        Name = name,
        MimeType = "application/octet-stream",
        Buffer = Platform.Contracts.Tensors.Npy.ToBytes(NpyArray.FromFloat32(values, values.Length)),
    };

    [GeneratedRegex(@"^\d[\d,.]* %$")]
    private static partial Regex NumberWithUnit();

    // "0.581 J (estimated), 1.1e6 J/GFLOP"
    [GeneratedRegex(@"^\d[\d,.]*(e-?\d+)? k?J \((estimated|measured)\), \d[\d,.]*(e-?\d+)? J/GFLOP$")]
    internal static partial Regex JobEnergy();

    private Task WithPageAsync(string name, Func<IPage, Task> test, params ExpectedBrowserError[] expected) =>
        network.WithPageAsync(name, output, test, expected);
}
