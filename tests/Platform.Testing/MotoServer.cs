using System.Diagnostics;
using System.Globalization;

namespace Platform.Testing;

/// <summary>
/// An in-memory S3 (moto_server) that every test in this process shares, started on first use on a free port
/// and killed when the process exits. Tests keep apart by bucket name or key prefix.
/// </summary>
public sealed class MotoServer
{
    /// <summary>moto accepts any credentials; these are what the helpers below hand out.</summary>
    public const string AccessKey = "testing";
    public const string SecretKey = "testing";
    public const string Region = "us-east-1";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    // Like ServiceProcess's launcher: a watcher kills moto and removes its log if this process dies without its
    // exit handler running (vstest kills the test process 100 ms after the run), then bash becomes moto_server.
    private const string Launcher = """
        log=$1 owner=$2
        shift 2
        server=$$
        (
          while kill -0 "$owner" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
          kill -0 "$owner" 2>/dev/null || { kill -KILL "$server" 2>/dev/null; rm -f "$log"; }
        ) </dev/null >/dev/null 2>&1 &
        exec "$@" >"$log" 2>&1
        """;

    // A failed start stays failed, so every test reports the same cause instead of each one starting moto again.
    private static readonly Lazy<Task<MotoServer>> Instance = new(StartAsync);

    private MotoServer(Uri serviceUrl) => ServiceUrl = serviceUrl;

    /// <summary>http://127.0.0.1:PORT/, for the SDK's ServiceURL (with path-style addressing).</summary>
    public Uri ServiceUrl { get; }

    /// <summary>The shared server, started on first use.</summary>
    public static Task<MotoServer> GetAsync() => Instance.Value;

    /// <summary>
    /// Settings for a storage service process using this server and <paramref name="bucket"/>, as environment
    /// variables for <see cref="ServiceProcess.StartAsync"/> (Storage:Backend is left to the caller).
    /// </summary>
    public IDictionary<string, string?> StorageSettings(string bucket) => new Dictionary<string, string?>
    {
        ["Storage__S3__ServiceUrl"] = ServiceUrl.ToString(),
        ["Storage__S3__Bucket"] = bucket,
        ["Storage__S3__AccessKey"] = AccessKey,
        ["Storage__S3__SecretKey"] = SecretKey,
        ["Storage__S3__Region"] = Region,
        ["Storage__S3__ForcePathStyle"] = "true",
    };

    private static async Task<MotoServer> StartAsync()
    {
        var executable = Tools.Find("moto_server") ?? throw new InvalidOperationException(
            "moto_server is not on PATH: the S3 tests need moto's server (pip package moto[server], which this machine's image " +
            "provides under pyenv's Python 3.11; Debian 12 has no python3-moto).");

        var port = FreePort.Next().ToString(CultureInfo.InvariantCulture);
        var log = Path.Combine(Path.GetTempPath(), $"platform-moto-{Environment.ProcessId}.log");
        var start = new ProcessStartInfo("bash") { UseShellExecute = false };
        foreach (var arg in new[] { "-c", Launcher, "moto-launcher", log, Environment.ProcessId.ToString(CultureInfo.InvariantCulture), executable, "-H", "127.0.0.1", "-p", port })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");

        // Nothing may throw from the exit handler.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(2000);
                File.Delete(log);
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"Platform.Testing: stopping moto_server failed: {ex.Message}");
            }
        };

        var serviceUrl = new Uri($"http://127.0.0.1:{port}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        bool up;
        try
        {
            // Any HTTP answer means it is serving, if moto is what listens on the port (it cannot say so itself);
            // a refused connection throws, and Eventually tries again.
            up = await Eventually.UntilAsync(
                async () =>
                {
                    if (process.HasExited)
                        return false;
                    using var response = await http.GetAsync(new Uri(serviceUrl, "moto-api/"));
                    return PortOwner.IsListenedOnBy(process.Id, serviceUrl.Port);
                },
                answered => answered || process.HasExited,
                StartTimeout,
                $"moto_server on {serviceUrl}");
        }
        catch (TimeoutException ex)
        {
            throw new InvalidOperationException($"moto_server ({executable}) did not answer on {serviceUrl}. Its output:\n{Tail(log)}", ex);
        }

        if (!up)
        {
            throw new InvalidOperationException(
                $"moto_server ({executable}) exited with code {process.ExitCode} before answering. Its output:\n{Tail(log)}");
        }

        return new MotoServer(serviceUrl);
    }

    private static string Tail(string log)
    {
        try
        {
            using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(30));
        }
        catch (IOException ex)
        {
            return $"(no output: {ex.Message})";
        }
    }
}
