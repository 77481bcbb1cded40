using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.EndToEnd.Tests;
using Platform.Testing;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>
/// The operator view's placement panel, on a network of its own: this test adds a second operator's worker, which
/// the network view test of <see cref="DashboardTests"/> must not see.
/// </summary>
public sealed class PlacementDashboardTests : IClassFixture<BrowserNetwork>
{
    private const decimal ShortStake = 4m;

    private readonly BrowserNetwork network;
    private readonly ITestOutputHelper output;

    public PlacementDashboardTests(BrowserNetwork network, ITestOutputHelper output)
    {
        this.network = network;
        this.output = output;
        SetDefaultExpectTimeout(30_000);
    }

    [Fact]
    public async Task An_operator_whose_stake_is_short_sees_why_its_node_gets_no_work_and_the_fix_while_a_staked_node_shows_energy_and_trust()
    {
        // An operator that staked less than the network's minimum, with a node online.
        var shortOperator = await network.CreateAccountAsync("operator", ShortStake);
        using (var http = network.Client(shortOperator.Key))
        using (var staked = await http.PostAsJsonAsync("/v1/account/stake", new { amount = ShortStake }))
            Assert.True(staked.IsSuccessStatusCode, await staked.Content.ReadAsStringAsync());
        await network.StartWorkerAsync(shortOperator.Key);
        using var anonymous = network.Client(null);
        var workers = await Eventually.UntilAsync(
            async () => (await anonymous.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json))!,
            list => list.Count(w => w.Online) == 2, TimeSpan.FromSeconds(60), "both workers to be online");
        var idle = workers.Single(w => w.OperatorAccountId == shortOperator.AccountId).WorkerId;
        var busy = workers.Single(w => w.OperatorAccountId == network.Operator.AccountId).WorkerId;

        // One job: the staked node runs it, and the short one's placement log says why it did not.
        var client = await network.CreateAccountAsync("client", 10m);
        using var clientHttp = network.Client(client.Key);
        float[] a = [1f, 2f, 3f];
        var cid = (await clientHttp.PinAsync(NpyArray.FromFloat32(a, a.Length))).Cid;
        using var submitted = await clientHttp.SubmitAsync(new { kernel = "vector-add", inputs = new { a = cid, b = cid } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await clientHttp.WaitForAsync(job.Id, j => j.Status == "completed", "the job to complete");
        var placement = await Eventually.UntilAsync(
            async () => (await anonymous.GetFromJsonAsync<WorkerPlacementView>($"/v1/workers/{idle}/placement", Api.Json))!,
            p => p.Reasons.Any(r => r.Code == "stake_too_low"), TimeSpan.FromSeconds(30), "the short node's placement to record the job");
        Assert.False(placement.GetsWork);
        var shortBy = (Network.OperatorStake - ShortStake).ToString(System.Globalization.CultureInfo.InvariantCulture);

        await network.WithPageAsync("operator-placement", output, async page =>
        {
            await page.GotoAsync("/");
            await DashboardTests.SignInAsync(page, shortOperator.Key);
            var card = page.Locator($"#placements article[data-worker='{idle}']");
            await Expect(card).ToBeVisibleAsync();
            // The headline, in the warning style, says in plain words why the node gets nothing.
            var status = card.Locator(".placement-status");
            await Expect(status).ToHaveTextAsync(placement.Status);
            await Expect(status).ToContainTextAsync($"its operator has staked {ShortStake.ToString(System.Globalization.CultureInfo.InvariantCulture)} of the 10");
            await Expect(status).ToHaveClassAsync(new Regex(@"\bwarning\b"));
            await Expect(status).ToHaveAttributeAsync("data-gets-work", "false");
            await Expect(card.Locator(".badge")).ToHaveTextAsync("gets no work");
            // The reason with how often it happened and the fix, the command set as code.
            var reason = card.Locator("tr[data-reason=stake_too_low]");
            await Expect(reason).ToContainTextAsync("Its operator has staked");
            await Expect(reason.Locator("td.num")).ToHaveTextAsync(new Regex(@"^[1-9]\d*$"));
            await Expect(reason.Locator("td.fix code")).ToHaveTextAsync($"./platform account stake {shortBy}");
            // No accepted work: no energy to show yet.
            await Expect(page.Locator($"#nodes tr[data-worker='{idle}'] td[data-energy]")).ToHaveTextAsync("–");
            await Expect(page.Locator("#alert")).ToBeHiddenAsync();
        });

        await network.WithPageAsync("operator-energy", output, async page =>
        {
            await page.GotoAsync("/");
            await DashboardTests.SignInAsync(page, network.Operator.Key);
            var card = page.Locator($"#placements article[data-worker='{busy}']");
            await Expect(card.Locator(".placement-status")).ToHaveAttributeAsync("data-gets-work", "true");
            await Expect(card.Locator(".placement-status")).ToHaveTextAsync(new Regex("^Gets work"));
            await Expect(card.Locator(".placement-status")).Not.ToHaveClassAsync(new Regex(@"\bwarning\b"));
            // Its accepted result started a streak for the kernel.
            await Expect(card.Locator("table.trust tr[data-kernel=vector-add] td").Nth(1)).ToHaveTextAsync(new Regex(@"^[1-9]\d*$"));
            await Expect(page.Locator($"#nodes tr[data-worker='{busy}'] td[data-energy]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]*(e-?\d+)? J/GFLOP$"));

            // The network view: energy per job and per GFLOP, and what verification cost.
            await page.ClickAsync("nav a[data-view=network]");
            await Expect(page.Locator("[data-stat=joulesPerJob]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]*(e-?\d+)? k?J$"));
            await Expect(page.Locator("[data-stat=joulesPerGflop]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]*(e-?\d+)? J$"));
            await Expect(page.Locator("[data-stat=verificationOverhead]")).ToHaveTextAsync(new Regex(@"^\d[\d,.]* %$"));
            await Expect(page.Locator($"#workers tr[data-worker='{busy}'] td[data-energy]")).ToHaveTextAsync(new Regex("J/GFLOP$"));
        });
    }
}
