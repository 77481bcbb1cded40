using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Platform.Hosting.Health;

namespace Platform.Testing;

/// <summary>
/// One platform service running as a real process from its build output, as it runs in production, so tests
/// can stop it gracefully, crash it and start it again.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private static readonly string[] Known = ["gateway", "scheduler", "worker", "rewards", "storage"];
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    // Services outlive a test process that forgot to stop them; the exit handler kills what is left.
    private static readonly ConcurrentDictionary<ServiceProcess, byte> Running = new();

    // The launcher: bash opens the log and replaces itself with dotnet, so the output goes straight to the file
    // (no pipe for this process to drain) and the process id is the service's own. Before that it forks a
    // watcher that kills the service if the test process dies without stopping it (vstest kills the test
    // process 100 ms after the run, before exit handlers can stop anything).
    private const string Launcher = """
        log=$1 owner=$2
        shift 2
        service=$$
        (
          while kill -0 "$owner" 2>/dev/null && kill -0 "$service" 2>/dev/null; do sleep 1; done
          kill -0 "$owner" 2>/dev/null || kill -KILL "$service" 2>/dev/null
        ) </dev/null >/dev/null 2>&1 &
        exec "$@" >>"$log" 2>&1
        """;

    private readonly Process process;
    private readonly TestEnvironment environment;
    private int disposed;
    private bool stopped;

    private readonly Dictionary<string, string?> extraEnv;

    private ServiceProcess(string service, int port, string instanceId, string logPath, Process process, TestEnvironment environment, Dictionary<string, string?> extraEnv)
    {
        this.extraEnv = extraEnv;
        Service = service;
        Port = port;
        InstanceId = instanceId;
        BaseUrl = new Uri($"http://127.0.0.1:{port}/");
        LogPath = logPath;
        ProcessId = process.Id;
        this.process = process;
        this.environment = environment;
    }

    public string Service { get; }

    public int Port { get; }

    /// <summary>
    /// The id this launch was given (Health__InstanceId): its health endpoints echo it, so readiness knows it is this
    /// process that answers on <see cref="Port"/> and not another one (a previous launch, another test's service).
    /// </summary>
    public string InstanceId { get; }

    public Uri BaseUrl { get; }

    /// <summary>The service's stdout and stderr.</summary>
    public string LogPath { get; }

    public int ProcessId { get; }

    public bool HasExited => stopped || process.HasExited;

    /// <summary>
    /// Starts <paramref name="service"/> (gateway, scheduler, worker, rewards or storage) against the environment's
    /// vhost and database and returns once GET /health/ready answers 200 as this very launch (its service name and
    /// <see cref="InstanceId"/>). A worker gets neither: it enrolls through the gateway named by Worker__GatewayUrl.
    /// <paramref name="extraEnv"/> adds or overrides environment variables; a null value removes one.
    /// <paramref name="port"/> must be one this process reserved (<see cref="FreePort.Next"/>); by default a new one is.
    /// </summary>
    public static async Task<ServiceProcess> StartAsync(
        string service,
        TestEnvironment env,
        IDictionary<string, string?>? extraEnv = null,
        TimeSpan? readyTimeout = null,
        int? port = null)
    {
        if (!Known.Contains(service))
        {
            throw new ArgumentException($"Unknown service '{service}'; expected one of {string.Join(", ", Known)}.", nameof(service));
        }

        var configuration = BuildConfiguration();
        var assembly = $"Platform.{char.ToUpperInvariant(service[0])}{service[1..]}";
        var dll = Path.Combine(env.Infrastructure.RepoRoot, "services", service, "bin", configuration, "net10.0", assembly + ".dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"{dll} is missing: build it first (dotnet build services/{service} -c {configuration}).", dll);
        }

        Directory.CreateDirectory(env.LogDirectory);
        var logPath = Path.Combine(env.LogDirectory, $"{service}-{env.NextInstance(service)}.log");
        var listenPort = port ?? FreePort.Next();
        var instanceId = $"{service}-{Guid.NewGuid():N}";

        var start = new ProcessStartInfo("bash")
        {
            UseShellExecute = false,
            // The content root (appsettings.json, wwwroot) is the current directory.
            WorkingDirectory = Path.GetDirectoryName(dll),
        };
        var owner = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        foreach (var arg in new[] { "-c", Launcher, "service-launcher", logPath, owner, DotnetHost(), dll })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{listenPort.ToString(CultureInfo.InvariantCulture)}";
        if (service == "worker")
        {
            // A node is a stranger's machine: it gets no service credential or secret, not even one inherited from
            // the test run's environment (./platform test exports the servers' connection strings). It enrolls
            // through the gateway and gets a broker login of its own.
            foreach (var inherited in start.Environment.Keys.Where(NotForNodes).ToList())
            {
                start.Environment.Remove(inherited);
            }
        }
        else
        {
            start.Environment["ConnectionStrings__RabbitMq"] = env.RabbitMqUri;
            start.Environment["ConnectionStrings__Postgres"] = env.PostgresConnectionStringFor(service);
        }

        if (service == "scheduler")
        {
            // Enrollment makes each node's broker user through the management API.
            start.Environment["RabbitMq__ManagementUrl"] = env.Infrastructure.RabbitMqManagementUri.ToString();
        }

        // Production, as deployed: Development would add the developer exception page and hide leaks of stack traces.
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        // The gateway signs what it forwards and the services behind it check; a node never holds the secret.
        if (service == "worker")
        {
            start.Environment.Remove("Platform__GatewaySecret");
        }
        else
        {
            start.Environment["Platform__GatewaySecret"] = env.GatewaySecret;
        }

        foreach (var (key, value) in extraEnv ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(key);
            }
            else
            {
                start.Environment[key] = value;
            }
        }

        // Last, so no caller's setting can make two launches look alike.
        start.Environment["Health__InstanceId"] = instanceId;

        var started = new ServiceProcess(
            service, listenPort, instanceId, logPath, Process.Start(start) ?? throw new InvalidOperationException("bash did not start"), env,
            new Dictionary<string, string?>(extraEnv ?? new Dictionary<string, string?>()));
        Running.TryAdd(started, 0);
        env.Track(started);
        await started.WaitUntilReadyAsync(readyTimeout ?? TimeSpan.FromSeconds(60));
        return started;
    }

    /// <summary>
    /// Pauses the process (SIGSTOP): it holds its connections and messages but does nothing, like a machine that
    /// hangs, until <see cref="ResumeAsync"/> lets it go on where it was. <see cref="Kill"/> still works on it.
    /// </summary>
    public Task PauseAsync() => SignalAsync("-STOP");

    /// <summary>Lets a paused process go on (SIGCONT): its timers fire, its heartbeats resume.</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    private async Task SignalAsync(string signal)
    {
        using var kill = System.Diagnostics.Process.Start("/bin/kill", [signal, ProcessId.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill {signal} {ProcessId} exited with {kill.ExitCode}");
        }
    }

    /// <summary>
    /// Crashes the service (<see cref="Kill"/>) and starts it again with the same settings on the same port, as
    /// a supervisor would: callers that know its address reach the new process. The port stays reserved to this
    /// test process while the service is down (<see cref="FreePort"/>), and readiness waits for the new launch's
    /// own instance id, so neither the old process nor a stranger on the port passes for the new one.
    /// </summary>
    public async Task<ServiceProcess> RestartAsync(TimeSpan? readyTimeout = null)
    {
        Kill();
        return await StartAsync(Service, environment, extraEnv, readyTimeout, Port);
    }

    /// <summary>Kills the process tree at once, like a crash: no shutdown code runs.</summary>
    public void Kill()
    {
        if (stopped)
        {
            return;
        }

        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        process.WaitForExit();
    }

    /// <summary>Stops the service gracefully (SIGTERM), killing it if it has not exited after 10 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        if (!process.HasExited)
        {
            // .NET can only send SIGKILL; SIGTERM is what lets the host run its shutdown.
            using (var kill = Process.Start("/bin/kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(StopTimeout);
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Kill();
            }
        }

        stopped = true;
        Running.TryRemove(this, out _);
        environment.Forget(this);
        process.Dispose();
    }

    /// <summary>The service's whole log so far (it goes on writing it).</summary>
    public string Log()
    {
        using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The last lines of the service's log.</summary>
    public string LogTail(int lines = 40) => string.Join('\n', Log().Split('\n').TakeLast(lines));

    /// <summary>
    /// The log once it contains <paramref name="text"/>. A line follows what it reports through the logger's queue,
    /// so a log read once right after the reported effect can miss it on a busy machine.
    /// </summary>
    public Task<string> WaitForLogAsync(string text, TimeSpan? timeout = null) =>
        Eventually.UntilAsync(() => Task.FromResult(Log()), log => log.Contains(text, StringComparison.Ordinal), timeout ?? TimeSpan.FromSeconds(20),
            $"\"{text}\" in the {Service} log ({LogPath})");

    /// <summary>Kills every service still running: at the test process's exit, where nothing may throw.</summary>
    internal static void KillAll()
    {
        foreach (var service in Running.Keys)
        {
            try
            {
                service.Kill();
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"Platform.Testing: killing {service.Service} failed: {ex.Message}");
            }
        }
    }

    private async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var ready = new Uri(BaseUrl, "health/ready");
        string? stranger = null;
        while (true)
        {
            if (process.HasExited)
            {
                throw Failed($"exited with code {process.ExitCode} before it was ready{Stranger(stranger)}");
            }

            try
            {
                using var response = await Http.GetAsync(ready);
                var answeredAs = Identity(response);
                if (answeredAs == (Service, InstanceId))
                {
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        return;
                    }
                }
                else
                {
                    // Someone else holds the port (or a launch that does not echo its id): never ready on its word.
                    stranger = $"{answeredAs.Service ?? "(no service header)"} instance {answeredAs.Instance ?? "(none)"} answered {(int)response.StatusCode}";
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Listening but too slow to answer yet.
            }

            if (clock.Elapsed > timeout)
            {
                Kill();
                throw Failed($"was not ready after {timeout.TotalSeconds} s{Stranger(stranger)}");
            }

            await Task.Delay(100); // poll interval; the deadline above bounds the wait
        }
    }

    private static (string? Service, string? Instance) Identity(HttpResponseMessage response) =>
        (Header(response, HealthIdentity.ServiceHeader), Header(response, HealthIdentity.InstanceHeader));

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static string Stranger(string? stranger) => stranger is null ? "" : $" (its port was answered by another process: {stranger})";

    // Called once the process has exited or been killed; the caller never gets this instance to dispose.
    private InvalidOperationException Failed(string what)
    {
        disposed = 1;
        stopped = true;
        Running.TryRemove(this, out _);
        environment.Forget(this);
        process.Dispose();
        return new InvalidOperationException($"{Service} on port {Port} {what}. Last lines of {LogPath}:\n{LogTail()}");
    }

    /// <summary>Settings a node must never hold: the services' connection strings and the platform's secrets.</summary>
    public static bool NotForNodes(string variable) =>
        variable.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
        || variable.StartsWith("Platform__", StringComparison.OrdinalIgnoreCase)
        || variable.StartsWith("PLATFORM_TEST_SERVERS", StringComparison.OrdinalIgnoreCase);

    // Test assemblies run from bin/<Configuration>/<tfm>/, and the services are built with the same configuration.
    private static string BuildConfiguration()
    {
        var configurationDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent;
        if (configurationDir?.Parent?.Name == "bin")
        {
            return configurationDir.Name;
        }
#if DEBUG
        return "Debug";
#else
        return "Release";
#endif
    }

    // The dotnet CLI tells the processes it starts where it is; "dotnet" on PATH otherwise.
    private static string DotnetHost() => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
}
