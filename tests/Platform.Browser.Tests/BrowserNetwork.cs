using Microsoft.Playwright;
using Platform.EndToEnd.Tests;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Browser.Tests;

/// <summary>
/// The whole network as real processes (<see cref="Network"/>: gateway, storage, rewards, scheduler and one staked
/// operator's worker) and one headless chromium from the machine's packages to look at its dashboard.
/// </summary>
public sealed class BrowserNetwork : Network
{
    // Debian and Ubuntu name the package's binary differently; PLATFORM_CHROMIUM points anywhere else.
    private static readonly string[] ChromiumPaths = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("the browser has not started");

    /// <summary>
    /// Where the screenshots go: TestResults/ of the checkout, which ./platform test passes as the results
    /// directory and keeps (PLATFORM_SCREENSHOTS overrides it).
    /// </summary>
    public string ScreenshotDirectory { get; } = System.Environment.GetEnvironmentVariable("PLATFORM_SCREENSHOTS") is { Length: > 0 } configured
        ? configured
        : Path.Combine(RepoRoot.Find(), "TestResults", "Platform.Browser.Tests", "screenshots");

    /// <summary>
    /// Both CPU backends, so the dashboard has two backends' rates to show: `auto` leaves PoCL out on a CPU (it matches
    /// SIMD there), naming it opens it.
    /// </summary>
    protected override Dictionary<string, string?>? FirstWorkerSettings => new() { ["Worker__Backend"] = "simd,opencl" };

    /// <summary>The network sampled every second, so the charts over time have points within the test.</summary>
    protected override Dictionary<string, string?> SchedulerOverrides => new() { ["Scheduler__HistoryInterval"] = "00:00:01" };

    public override async Task InitializeAsync()
    {
        // The browser first: a machine without chromium fails here in a second, not after the network has started.
        var executable = System.Environment.GetEnvironmentVariable("PLATFORM_CHROMIUM") is { Length: > 0 } path ? path : ChromiumPaths.FirstOrDefault(File.Exists);
        if (executable is null || !File.Exists(executable))
            throw new InvalidOperationException(
                $"No chromium at {string.Join(", ", ChromiumPaths)}: install Debian's package (scripts/infra.sh install does, as root) or set PLATFORM_CHROMIUM.");
        // Playwright must never fetch browsers of its own: there may be no network, and the machine's chromium is the one tested.
        System.Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = executable,
            Headless = true,
            // Root cannot use chromium's sandbox (it refuses to start); the rest keeps it from phoning home.
            Args = [.. System.Environment.UserName == "root" ? ["--no-sandbox"] : Array.Empty<string>(),
                "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        });
        Directory.CreateDirectory(ScreenshotDirectory);
        await base.InitializeAsync();
    }

    /// <summary>A fresh page in a context of its own (its own sessionStorage), on the gateway.</summary>
    public async Task<IPage> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new() { BaseURL = Gateway.BaseUrl.ToString(), AcceptDownloads = true, Locale = "en-US", ViewportSize = new() { Width = 1280, Height = 900 } });
        return await context.NewPageAsync();
    }

    public async Task<string> ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(ScreenshotDirectory, name + ".png");
        await page.ScreenshotAsync(new() { Path = path, FullPage = true });
        return path;
    }

    /// <summary>
    /// Runs <paramref name="test"/> on a fresh page and screenshots the page at its end, passed or failed, so a
    /// person can see each view; browser console errors and warnings are printed with the test's output. A test whose
    /// page logged a console error or threw an uncaught error (a broken script, a failed request) fails, unless the
    /// error is one of <paramref name="expected"/>: the errors the test provokes on purpose, each with its reason.
    /// </summary>
    public async Task WithPageAsync(string name, ITestOutputHelper output, Func<IPage, Task> test, params ExpectedBrowserError[] expected)
    {
        var page = await NewPageAsync();
        var console = new List<string>();
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type is "error" or "warning")
            {
                // A failed request is logged with the request's address as its location, not in its text.
                var line = string.IsNullOrEmpty(message.Location) ? message.Text : $"{message.Text} at {message.Location}";
                lock (console)
                {
                    console.Add($"{message.Type}: {line}");
                    if (message.Type == "error")
                        errors.Add(line);
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (console)
            {
                console.Add($"page error: {error}");
                errors.Add($"page error: {error}");
            }
        };
        var passed = false;
        try
        {
            await test(page);
            passed = true;
        }
        finally
        {
            var path = await ScreenshotAsync(page, passed ? name : name + "-failed");
            output.WriteLine($"screenshot: {path}");
            lock (console)
            {
                foreach (var line in console)
                    output.WriteLine($"browser {line}");
            }
            await page.Context.CloseAsync();
        }

        string[] unexpected;
        ExpectedBrowserError[] missing;
        lock (console)
        {
            unexpected = [.. errors.Where(error => !expected.Any(e => e.Matches(error)))];
            missing = [.. expected.Where(e => !errors.Any(e.Matches))];
        }
        Assert.True(unexpected.Length == 0,
            $"the page logged {unexpected.Length} error(s) the test did not expect:\n{string.Join('\n', unexpected)}");
        // An expected error that never came means the test no longer provokes what it says, or the list is stale.
        Assert.True(missing.Length == 0,
            $"the page never logged the error(s) the test provokes:\n{string.Join('\n', missing.Select(e => $"{e.Pattern} ({e.Why})"))}");
    }

    public override async Task DisposeAsync()
    {
        try
        {
            try
            {
                if (_browser is not null)
                    await _browser.CloseAsync();
            }
            finally
            {
                _playwright?.Dispose();
            }
        }
        finally
        {
            // The network's services stop even when the browser could not be closed.
            await base.DisposeAsync();
        }
    }
}

/// <summary>A console error a test provokes on purpose (<paramref name="Pattern"/> matches its text and location), and why.</summary>
public sealed record ExpectedBrowserError(string Pattern, string Why)
{
    public bool Matches(string error) => System.Text.RegularExpressions.Regex.IsMatch(error, Pattern);
}
