using System.Diagnostics;
using System.Globalization;

namespace Platform.Testing;

/// <summary>Runs scripts/infra.sh, the one place that knows how to start and stop RabbitMQ and Postgres.</summary>
internal static class InfraScript
{
    /// <summary>Runs one command and returns the last line it printed on stdout (a URI or connection string).</summary>
    public static string Run(string repoRoot, TimeSpan timeout, params string[] args) => RunOwned(repoRoot, timeout, Environment.ProcessId, args);

    /// <summary>
    /// The same, for servers that belong to process <paramref name="owner"/>: the script stops them when that
    /// process is gone (servers ./platform test started live as long as the script, not this test process).
    /// </summary>
    public static string RunOwned(string repoRoot, TimeSpan timeout, int owner, params string[] args) => RunOwned(repoRoot, timeout, owner, null, args);

    /// <summary>The same, with settings for the script in its environment (PLATFORM_RABBITMQ_NETNS...).</summary>
    public static string RunOwned(string repoRoot, TimeSpan timeout, int owner, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var start = new ProcessStartInfo("bash")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(repoRoot, "scripts", "infra.sh"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The script stops the servers itself if this process dies without running its exit handler.
        start.Environment["PLATFORM_INFRA_OWNER_PID"] = owner.ToString(CultureInfo.InvariantCulture);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var command = "infra.sh " + string.Join(' ', args);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{command} did not finish within {timeout.TotalSeconds} s");
        }

        // The reads end only when every holder of the pipes has closed them: a server started in the
        // background that inherited them would keep them open for its whole life.
        if (!Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(10)))
        {
            throw new InvalidOperationException($"{command} exited but left its output pipes open");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{command} failed with exit code {process.ExitCode}:\n{stderr.Result}");
        }

        var lines = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length > 0 ? lines[^1] : "";
    }
}
