using System.Globalization;
using System.Net.Http.Json;
using Platform.Contracts.Api;
using Platform.EndToEnd.Tests;
using Platform.Testing;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>
/// The network view shows each node's calibration as GET /v1/workers reports it: the backend every kernel is routed
/// to, and the GFLOP/s every backend measured. The test network's worker is told to open SIMD and OpenCL (PoCL, which
/// scripts/infra.sh installs; `auto` would leave it out on a CPU), so there are two backends with rates of their own to tell apart.
/// </summary>
public sealed class BackendDashboardTests : IClassFixture<BrowserNetwork>
{
    private readonly BrowserNetwork network;
    private readonly ITestOutputHelper output;

    public BackendDashboardTests(BrowserNetwork network, ITestOutputHelper output)
    {
        this.network = network;
        this.output = output;
        SetDefaultExpectTimeout(30_000);
    }

    [Fact]
    public async Task The_network_view_shows_the_backend_each_kernel_is_routed_to_and_the_rates_every_backend_measured()
    {
        using var anonymous = network.Client(null);
        var worker = await Eventually.UntilAsync(
            async () => (await anonymous.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json))!
                .SingleOrDefault(w => w.OperatorAccountId == network.Operator.AccountId && w.Online),
            w => w is { GflopsPerBackend.Count: > 0 }, TimeSpan.FromSeconds(60), "the worker to be online with its calibration");
        var rates = worker!.GflopsPerBackend!;
        foreach (var (backend, perKernel) in rates.OrderBy(r => r.Key, StringComparer.Ordinal))
            output.WriteLine($"{backend}: {string.Join(", ", perKernel.Select(r => $"{r.Key} {r.Value.ToString(CultureInfo.InvariantCulture)}"))}");
        output.WriteLine($"routed: {string.Join(", ", worker.BackendPerKernel.Select(r => $"{r.Key} -> {r.Value}"))}");
        // Two backends, or a wrong backend or a rate in the wrong column would go unseen.
        Assert.True(rates.Count >= 2, $"the worker opened only {string.Join(", ", rates.Keys)}: is PoCL installed (scripts/infra.sh install)?");
        Assert.Equal(worker.Kernels.Order(StringComparer.Ordinal), worker.BackendPerKernel.Keys.Order(StringComparer.Ordinal));
        var backends = rates.Keys.Order(StringComparer.Ordinal).ToList();

        await network.WithPageAsync("network-backends", output, async page =>
        {
            await page.GotoAsync("/");
            var row = page.Locator($"#workers tr[data-worker='{worker.WorkerId}']");
            await Expect(row).ToBeVisibleAsync();
            // The broker's dead-letter count, read by the scheduler from its management API: zero here, not a dash.
            await Expect(page.Locator("[data-stat='deadLetters']")).ToHaveTextAsync("0");

            // Every kernel the node serves, named with exactly the backend the API reports for it, and no other.
            var kernels = row.Locator("td[data-kernels] > span[data-kernel]");
            await Expect(kernels).ToHaveCountAsync(worker.Kernels.Count);
            foreach (var kernel in worker.Kernels)
            {
                var backend = worker.BackendPerKernel[kernel];
                var name = row.Locator($"td[data-kernels] > span[data-kernel='{kernel}']");
                await Expect(name).ToHaveTextAsync($"{kernel} ({backend})");
                await Expect(name).ToHaveAttributeAsync("data-backend", backend);
            }

            // The rates are on the page, not only in a hover title: one click opens them.
            var rateTable = row.Locator("details.rates table");
            await Expect(rateTable).ToBeHiddenAsync();
            await row.Locator("details.rates summary").ClickAsync();
            await Expect(rateTable).ToBeVisibleAsync();
            Assert.Equal(backends, await rateTable.Locator("thead th[data-backend]").AllTextContentsAsync());
            await Expect(rateTable.Locator("tbody tr[data-kernel]")).ToHaveCountAsync(worker.Kernels.Count);
            foreach (var kernel in worker.Kernels)
            {
                var line = rateTable.Locator($"tbody tr[data-kernel='{kernel}']");
                foreach (var backend in backends)
                {
                    var cell = line.Locator($"td[data-backend='{backend}']");
                    await Expect(cell).ToHaveTextAsync(rates[backend].TryGetValue(kernel, out var gflops) ? Format(gflops) : "–");
                    // The backend the kernel runs on stands out in its line; the others do not.
                    if (backend == worker.BackendPerKernel[kernel])
                        await Expect(cell).ToHaveClassAsync("num routed");
                    else
                        await Expect(cell).ToHaveClassAsync("num");
                }
            }

            // The view refreshes every few seconds by rebuilding its rows: what the reader opened stays open.
            var updated = await page.Locator("#network-updated").TextContentAsync();
            await Expect(page.Locator("#network-updated")).Not.ToHaveTextAsync(updated!);
            await Expect(rateTable).ToBeVisibleAsync();
        });
    }

    /// <summary>What the page's formatNumber shows in the en-US locale the browser runs in: grouped, at most two decimals, halves away from zero.</summary>
    private static string Format(double gflops) => ((decimal)gflops).ToString("#,##0.##", CultureInfo.InvariantCulture);
}
