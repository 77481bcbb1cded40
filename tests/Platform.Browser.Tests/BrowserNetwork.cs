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
    /// person can see each view; browser console errors are printed with the test's output.
    /// </summary>
    public async Task WithPageAsync(string name, ITestOutputHelper output, Func<IPage, Task> test)
    {
        var page = await NewPageAsync();
        var console = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type is "error" or "warning")
                console.Add($"{message.Type}: {message.Text}");
        };
        page.PageError += (_, error) => console.Add($"page error: {error}");
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
            foreach (var line in console)
                output.WriteLine($"browser {line}");
            await page.Context.CloseAsync();
        }
    }

    public override async Task DisposeAsync()
    {
        if (_browser is not null)
            await _browser.CloseAsync();
        _playwright?.Dispose();
        await base.DisposeAsync();
    }
}
