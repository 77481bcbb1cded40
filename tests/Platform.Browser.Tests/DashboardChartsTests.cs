using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Platform.Contracts.Tensors;
using Platform.EndToEnd.Tests;
using Platform.Testing;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>
/// The dashboard's charts (Chart.js, served by the gateway) with real data: the network over time from the
/// scheduler's samples, a client's spending, a job's timeline, receipt and provenance, an operator's earnings.
/// Each chart is checked three ways: the Chart.js instance holds the API's numbers, the canvas has paint on it, and
/// the text alternative says the same.
/// </summary>
public sealed partial class DashboardTests
{
    [Fact]
    public async Task The_charts_plot_what_the_network_did_and_a_jobs_page_shows_its_timeline_its_checked_receipt_and_provenance()
    {
        var client = await network.CreateAccountAsync("client", 50m);
        using var http = network.Client(client.Key);
        float[] a = [1f, 2f, 3f];
        var cid = (await http.PinAsync(NpyArray.FromFloat32(a, a.Length))).Cid;
        var jobs = new List<Job>();
        for (var i = 0; i < 2; i++)
        {
            using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = cid, b = cid } });
            jobs.Add((await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!);
        }
        foreach (var job in jobs)
            await http.WaitForAsync(job.Id, j => j.Status == "completed" && j.Cost is not null, "the job to complete and be paid for");
        var paid = jobs.Count;

        await WithPageAsync("charts-network", async page =>
        {
            await page.GotoAsync("/");
            // A sample a second: the jobs' completions land in one, with their latency.
            await Expect(page.Locator("#chart-throughput")).ToHaveAttributeAsync("data-points", Plotted());
            // Per minute from one-second samples: each completion counts 60 (the class's other tests ran jobs too).
            // The last completion may land in a sample taken after the page's latest refresh: wait for it.
            await Eventually.UntilAsync(async () => (await ChartDataAsync(page, "#chart-throughput")).Sum() >= 60.0 * paid, TimeSpan.FromSeconds(30),
                $"the throughput chart to plot the {paid} completed jobs");
            Assert.All(await ChartDataAsync(page, "#chart-throughput"), v => Assert.Equal(0, v % 60));
            var latencies = await ChartDataAsync(page, "#chart-latency");
            Assert.Contains(latencies, l => l > 0);
            await AssertPaintedAsync(page, "#chart-throughput");
            await AssertPaintedAsync(page, "#chart-latency");
            await Expect(page.Locator("#history-interval")).ToHaveTextAsync("1 s");
        });

        await WithPageAsync("charts-client", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            // Spending: what the two jobs and pinning their input cost, all the account's 50 credits it no longer has.
            var account = (await http.GetFromJsonAsync<AccountView>("/v1/account", Api.Json))!;
            Assert.Equal(0m, account.Escrowed);
            // One bar a UTC day: one, unless the test ran across midnight.
            await Expect(page.Locator("#chart-spending")).ToHaveAttributeAsync("data-points", new Regex("^[12]$"));
            var spent = await ChartDataAsync(page, "#chart-spending");
            Assert.Equal((double)(50m - account.Balance), spent.Sum(), 9);
            await AssertPaintedAsync(page, "#chart-spending");

            // A finished job's page replays its log: a bar per stretch between status changes, then the receipt.
            await page.Locator($"#jobs tr[data-job='{jobs[0].Id}'] a").ClickAsync();
            await Expect(page.Locator("#job-events li[data-status=completed]")).ToHaveCountAsync(1);
            var stretches = await page.Locator("#job-events li").CountAsync() - 1;
            await Expect(page.Locator("#chart-timeline")).ToHaveAttributeAsync("data-points", stretches.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(stretches >= 2, $"{stretches} stretches");
            await AssertPaintedAsync(page, "#chart-timeline");

            var status = page.Locator("#receipt-status");
            await Expect(status).ToHaveAttributeAsync("data-verified", "valid");
            await Expect(status).ToContainTextAsync(new Regex("^Signature valid: signed by the platform key sha256:[0-9a-f]{16}"));
            await Expect(page.Locator("#receipt-facts [data-results]")).ToHaveTextAsync("one result, accepted on the node's standing (not spot-checked)");
            // Provenance: the pinned input, the worker that computed it, the output it produced.
            var record = (await http.GetFromJsonAsync<Job>($"/v1/jobs/{jobs[0].Id}", Api.Json))!;
            await Expect(page.Locator($"#provenance-chain [data-step=inputs] [data-cid='{cid}']")).ToHaveCountAsync(2);
            await Expect(page.Locator("#provenance-chain [data-step=attempts] li")).ToHaveCountAsync(1);
            await Expect(page.Locator("#provenance-chain [data-step=attempts] li")).ToContainTextAsync(record.Attempts.Single(t => t.Status == "accepted").WorkerId);
            await Expect(page.Locator($"#provenance-chain [data-step=outputs] [data-cid='{record.Outputs!["c"]}']")).ToHaveCountAsync(1);
            var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#receipt-download").ClickAsync());
            Assert.Equal($"{jobs[0].Id}.receipt.json", download.SuggestedFilename);
            Assert.Contains($"\"jobId\": \"{jobs[0].Id}\"", await File.ReadAllTextAsync((await download.PathAsync())!), StringComparison.Ordinal);
        });

        await WithPageAsync("charts-operator", async page =>
        {
            await page.GotoAsync("/");
            await SignInAsync(page, network.Operator.Key);
            // Paid today for the jobs; the earnings bar is that day's payout (and any mint).
            await Expect(page.Locator("#chart-earnings")).ToHaveAttributeAsync("data-points", Plotted());
            Assert.Contains(await ChartDataAsync(page, "#chart-earnings"), paidToday => paidToday > 0);
            await AssertPaintedAsync(page, "#chart-earnings");
            // The node's J/GFLOP and speed are plotted from its samples, or the chart says why there is nothing yet.
            foreach (var chart in new[] { "#chart-node-speed", "#chart-node-energy" })
            {
                await Expect(page.Locator(chart)).ToHaveAttributeAsync("data-points", new Regex(@"^\d+$"));
                if (await page.Locator(chart).GetAttributeAsync("data-points") == "0")
                    await Expect(page.Locator($"{chart} .chart-empty")).ToBeVisibleAsync();
                else
                    await AssertPaintedAsync(page, chart);
            }
        });
    }

    [Fact]
    public async Task A_receipt_changed_on_its_way_to_the_page_is_shown_as_invalid()
    {
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        float[] a = [4f, 5f];
        var cid = (await http.PinAsync(NpyArray.FromFloat32(a, a.Length))).Cid;
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = cid, b = cid } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        await http.WaitForAsync(job.Id, j => j.Status == "completed" && j.Cost is not null, "the job to complete and be paid for");

        await WithPageAsync("receipt-tampered", async page =>
        {
            // Whoever sits between the page and the platform lowers the cost the receipt states.
            await page.RouteAsync(new Regex("/receipt$"), async route =>
            {
                var response = await route.FetchAsync();
                var text = await response.TextAsync();
                var changed = Regex.Replace(text, "\"cost\": [0-9.]+", "\"cost\": 0.000001");
                Assert.NotEqual(text, changed);
                await route.FulfillAsync(new() { Response = response, Body = changed });
            });
            await page.GotoAsync("/");
            await SignInAsync(page, client.Key);
            await page.Locator($"#jobs tr[data-job='{job.Id}'] a").ClickAsync();
            await Expect(page.Locator("#receipt-status")).ToHaveAttributeAsync("data-verified", "invalid");
            await Expect(page.Locator("#receipt-status")).ToContainTextAsync("Signature INVALID");
        });
    }

    /// <summary>A data-points value of one or more.</summary>
    private static Regex Plotted() => new("^[1-9][0-9]*$");

    /// <summary>The values of one series of the Chart.js chart in <paramref name="figure"/>, as the page holds them (nulls left out).</summary>
    internal static async Task<double[]> ChartDataAsync(IPage page, string figure, int series = 0) =>
        await page.EvaluateAsync<double[]>(
            "([figure, series]) => Chart.getChart(document.querySelector(`${figure} canvas`)).data.datasets[series].data.filter(v => v != null)",
            new object[] { figure, series });

    /// <summary>Chart.js drew on the canvas: it is shown, has a size, and some of its pixels are not transparent.</summary>
    internal static async Task AssertPaintedAsync(IPage page, string figure)
    {
        await Expect(page.Locator($"{figure} canvas")).ToBeVisibleAsync();
        var painted = await page.EvaluateAsync<int>(
            """
            figure => {
              const canvas = document.querySelector(`${figure} canvas`);
              const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
              let count = 0;
              for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) count++;
              return count;
            }
            """, figure);
        Assert.True(painted > 100, $"{figure}: {painted} painted pixels");
    }
}
