using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Platform.Client;
using Platform.Contracts.Api;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Platform.Cli.Commands;

/// <summary><c>node start</c>: an operator's machine joins the network in one command.</summary>
public static class NodeCommands
{
    private static readonly TimeSpan Refresh = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(15);

    public static Command Build(CliHost host)
    {
        var region = new Option<string>("--region") { Description = "Where this machine is (lower-case letters, digits, '-')", DefaultValueFactory = _ => "local" };
        var slots = new Option<int>("--slots") { Description = "Jobs run at once", DefaultValueFactory = _ => 1 };
        var stake = new Option<decimal>("--stake") { Description = "Stake to hold; the missing part is staked from the balance (the network's minimum is 10)", DefaultValueFactory = _ => 10m };
        var data = new Option<string?>("--data") { Description = "Where the node keeps its identity, caches and log (default ~/.platform-node)" };
        var worker = new Option<string?>("--worker") { Description = "The Platform.Worker.dll to run (default PLATFORM_WORKER_DLL, then this checkout's build)" };
        var start = new Command("start", "Run a worker on this machine for the operator (it gets a node key, never the operator key), with a live view, until Ctrl-C")
        {
            region, slots, stake, data, worker,
        };
        start.SetRun(host, (s, ct) => StartAsync(s, new NodeSettings(s.Get(region), s.Get(slots), s.Get(stake), s.Get(data), s.Get(worker)), ct));

        var node = new Command("node", "Run a node: lend this machine to the network and earn credits");
        node.Subcommands.Add(start);
        return node;
    }

    private sealed record NodeSettings(string Region, int Slots, decimal Stake, string? Data, string? Worker);

    private static async Task<int> StartAsync(Session s, NodeSettings o, CancellationToken ct)
    {
        var env = s.Host.Environment;
        if (s.Settings.Key is null)
            throw new UsageException("node start needs an operator key: --key, PLATFORM_KEY or 'platform login'");
        if (o.Slots is < 1 or > 256)
            throw new UsageException("--slots must be between 1 and 256");

        var account = await s.Client.GetAccountAsync(ct);
        if (account.Role != "operator")
            throw new UsageException($"this key belongs to a {account.Role} account; a node runs under an operator's key");
        if (account.Staked < o.Stake)
        {
            var missing = o.Stake - account.Staked;
            if (account.Balance < missing)
                throw new CommandFailedException($"staking {Output.Credits(missing)} more credits needs them on the balance, which holds {Output.Credits(account.Balance)}");
            await s.Client.StakeAsync(missing, null, ct);
            s.Host.Error.WriteLine($"staked {Output.Credits(missing)} credits (stake now {Output.Credits(o.Stake)})");
        }

        var dataDirectory = Path.GetFullPath(o.Data ?? Path.Combine(env("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".platform-node"));
        Directory.CreateDirectory(dataDirectory);
        var log = Path.Combine(dataDirectory, "worker.log");
        var nodeKey = await NodeKeyAsync(s, dataDirectory, ct);
        // The worker gets a node key and the gateway's URL, nothing else of the network: never the operator's key. It
        // enrolls through the gateway (POST /v1/nodes) and gets a broker login of its own.
        using var process = StartWorker(LocateWorker(o.Worker, env), new Dictionary<string, string?>
        {
            ["Worker__NodeKey"] = nodeKey,
            ["Worker__GatewayUrl"] = s.Settings.Url.ToString(),
            ["Worker__DataDirectory"] = dataDirectory,
            ["Worker__Region"] = o.Region,
            ["Worker__Slots"] = o.Slots.ToString(CultureInfo.InvariantCulture),
            // Its health endpoint is not needed here; any free port keeps two nodes on one machine apart.
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        }, log);
        s.Host.Error.WriteLine($"worker started (pid {process.Id}); its log is {log}");
        try
        {
            var workerId = await WaitUntilListedAsync(s, process, dataDirectory, log, ct);
            s.Host.Error.WriteLine($"{workerId} is online; Ctrl-C stops it");
            await ShowLiveAsync(s, process, workerId, account.AccountId, log, ct);
            if (process.HasExited)
                throw new CommandFailedException($"the worker exited with code {process.ExitCode}; the end of {log}:\n{Tail(log)}");
            return 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 0; // Ctrl-C is how a node is stopped
        }
        finally
        {
            await StopAsync(s, process);
        }
    }

    private sealed record SavedNodeKey(string Id, string Key);

    /// <summary>
    /// The node key of the node in <paramref name="dataDirectory"/>: the one saved there (node-key.json, owner-only)
    /// while the operator still holds it, else a new one made with the operator's key and saved. A node key is bound
    /// to the worker it first enrolls, so each data folder (one worker id) keeps its own.
    /// </summary>
    private static async Task<string> NodeKeyAsync(Session s, string dataDirectory, CancellationToken ct)
    {
        var file = Path.Combine(dataDirectory, "node-key.json");
        if (File.Exists(file))
        {
            SavedNodeKey? saved = null;
            try
            {
                saved = System.Text.Json.JsonSerializer.Deserialize<SavedNodeKey>(await File.ReadAllTextAsync(file, ct));
            }
            catch (System.Text.Json.JsonException)
            {
                // Unreadable: replaced by a new key below.
            }
            if (saved is { Id.Length: > 0, Key.Length: > 0 } && (await s.Client.ListNodeKeysAsync(ct)).Any(k => k.Id == saved.Id))
                return saved.Key;
        }
        var created = await s.Client.CreateNodeKeyAsync(1, ct);
        var temporary = file + ".tmp";
        // Readable by its owner only, from the moment it exists.
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using (var stream = new FileStream(temporary, options))
            await System.Text.Json.JsonSerializer.SerializeAsync(stream, new SavedNodeKey(created.Id, created.Key), cancellationToken: ct);
        File.Move(temporary, file, overwrite: true);
        s.Host.Error.WriteLine($"made node key {created.Id} for this node (saved in {file})");
        return created.Key;
    }

    /// <summary>The built worker of this checkout, or `dotnet run` of its project when it has not been built.</summary>
    private static ProcessStartInfo LocateWorker(string? path, Func<string, string?> env)
    {
        var dotnet = Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : env("DOTNET_HOST_PATH") ?? "dotnet";
        path ??= env("PLATFORM_WORKER_DLL");
        if (path is not null)
        {
            if (!File.Exists(path))
                throw new UsageException($"{path} does not exist (from --worker or PLATFORM_WORKER_DLL)");
            return Start(dotnet, Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFullPath(path));
        }
        var repo = FindCheckout() ?? throw new UsageException("cannot find Platform.Worker.dll: pass --worker PATH or set PLATFORM_WORKER_DLL");
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent?.Name;
        foreach (var c in new[] { configuration, "Release", "Debug" }.OfType<string>().Distinct())
        {
            var dll = Path.Combine(repo, "services", "worker", "bin", c, "net10.0", "Platform.Worker.dll");
            if (File.Exists(dll))
                return Start(dotnet, Path.GetDirectoryName(dll)!, dll);
        }
        var project = Path.Combine(repo, "services", "worker");
        return Start(dotnet, project, "run", "--project", Path.Combine(project, "Platform.Worker.csproj"), "-c", "Release", "--no-launch-profile");

        static ProcessStartInfo Start(string file, string directory, params string[] args)
        {
            // The worker's content root (appsettings.json) is its working directory.
            var info = new ProcessStartInfo(file) { WorkingDirectory = directory, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in args)
                info.ArgumentList.Add(arg);
            return info;
        }
    }

    private static string? FindCheckout()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Platform.sln")) && Directory.Exists(Path.Combine(dir.FullName, "services", "worker")))
                return dir.FullName;
        }
        return null;
    }

    private static Process StartWorker(ProcessStartInfo info, Dictionary<string, string?> env, string log)
    {
        // Whatever service settings this shell happens to hold (a developer's connection strings, an admin key) stay
        // out of the node, and so does the operator's key (PLATFORM_KEY) and any worker setting (Worker__OperatorKey of old).
        foreach (var inherited in info.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("Platform__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("Worker__", StringComparison.OrdinalIgnoreCase)
            || k.Equals("PLATFORM_KEY", StringComparison.OrdinalIgnoreCase)).ToList())
            info.Environment.Remove(inherited);
        foreach (var (name, value) in env)
        {
            if (value is null)
                info.Environment.Remove(name);
            else
                info.Environment[name] = value;
        }
        var writer = new StreamWriter(new FileStream(log, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        // Both streams go to one log, a line at a time. The log closes once both streams have ended (a null line
        // each), not when the process exits: Exited can come before the last lines have been read.
        var open = 2;
        void Write(object? sender, DataReceivedEventArgs e)
        {
            lock (writer)
            {
                if (e.Data is not null)
                    writer.WriteLine(e.Data);
                else if (--open == 0)
                    writer.Dispose();
            }
        }
        process.OutputDataReceived += Write;
        process.ErrorDataReceived += Write;
        if (!process.Start())
            throw new CommandFailedException($"could not start {info.FileName}");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits until the worker has written its id and the network lists it online.</summary>
    private static async Task<string> WaitUntilListedAsync(Session s, Process process, string dataDirectory, string log, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var idFile = Path.Combine(dataDirectory, "worker-id");
        while (true)
        {
            if (process.HasExited)
                throw new CommandFailedException($"the worker exited with code {process.ExitCode} while starting; the end of {log}:\n{Tail(log)}");
            if (File.Exists(idFile) && (await File.ReadAllTextAsync(idFile, ct)).Trim() is { Length: > 0 } id
                && (await s.Client.GetWorkersAsync(ct)).Any(w => w.WorkerId == id && w.Online))
                return id;
            if (deadline.Elapsed > StartTimeout)
                throw new CommandFailedException($"the worker is not listed online after {StartTimeout.TotalSeconds:0} s; see {log}");
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
        }
    }

    private static async Task ShowLiveAsync(Session s, Process process, string workerId, string accountId, string log, CancellationToken ct)
    {
        var console = s.Host.Out;
        if (console.Profile.Capabilities.Interactive && !s.Json)
        {
            await console.Live(new Text("")).AutoClear(false).StartAsync(async live =>
            {
                while (!process.HasExited)
                {
                    live.UpdateTarget(Panel(await ReadAsync(s, workerId, accountId, ct), log));
                    live.Refresh();
                    await Task.Delay(Refresh, ct);
                }
            });
            return;
        }
        // Not a terminal: one line whenever something changes.
        string? last = null;
        while (!process.HasExited)
        {
            var line = Line(await ReadAsync(s, workerId, accountId, ct));
            if (line != last)
            {
                if (s.Json)
                    s.Host.Output.WriteLine(System.Text.Json.JsonSerializer.Serialize(await ReadAsync(s, workerId, accountId, ct), Output.Json).ReplaceLineEndings(" "));
                else
                    s.Host.Output.WriteLine($"{Output.Time(DateTimeOffset.Now)}  {line}");
                last = line;
            }
            await Task.Delay(Refresh, ct);
        }
    }

    private sealed record NodeView(string WorkerId, WorkerView? Worker, AccountResponse Account, WorkerEarnings? Earned);

    private static async Task<NodeView> ReadAsync(Session s, string workerId, string accountId, CancellationToken ct)
    {
        var worker = (await s.Client.GetWorkersAsync(ct)).FirstOrDefault(w => w.WorkerId == workerId);
        var account = await s.Client.GetAccountAsync(ct);
        WorkerEarnings? earned = null;
        try
        {
            earned = (await s.Client.GetEarningsAsync(ct)).Workers.FirstOrDefault(w => w.WorkerId == workerId) ?? new WorkerEarnings(workerId, 0, 0, 0);
        }
        catch (PlatformApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // A gateway without per-worker earnings: the account's total earned stands in.
        }
        return new NodeView(workerId, worker, account, earned);
    }

    private static string Line(NodeView v) =>
        $"{v.WorkerId} {(v.Worker?.Online == true ? "online" : "offline")}  active {v.Worker?.Active ?? 0}/{v.Worker?.Slots ?? 0}" +
        $"  reputation {v.Worker?.Reputation.ToString("0.00", CultureInfo.InvariantCulture) ?? "-"}  jobs done {(v.Earned is { } e ? e.Jobs.ToString(CultureInfo.InvariantCulture) : "-")}" +
        $"  earned {Output.Credits(v.Earned?.Earned ?? v.Account.Earned)}";

    private static IRenderable Panel(NodeView v, string log)
    {
        var w = v.Worker;
        var grid = Output.Facts(
            ("status", w is null ? "not listed" : w.Online ? "online" : "offline"),
            ("region", w?.Region), ("active attempts", w is null ? null : $"{w.Active} of {w.Slots} slot(s)"),
            ("reputation", w?.Reputation.ToString("0.00", CultureInfo.InvariantCulture)),
            ("jobs done", v.Earned is { } e ? e.Jobs.ToString(CultureInfo.InvariantCulture) : "-"),
            ("earned", $"{Output.Credits(v.Earned?.Earned ?? v.Account.Earned)} credits" + (v.Earned is null ? " (account total)" : "")),
            ("balance", $"{Output.Credits(v.Account.Balance)} credits"), ("staked", $"{Output.Credits(v.Account.Staked)} credits"),
            ("devices", w is null ? null : string.Join(", ", w.Devices.Select(d => $"{d.Kind} {d.Name}"))),
            ("log", log));
        return new Panel(grid).Header(Markup.Escape($" node {v.WorkerId} ")).Border(BoxBorder.Rounded)
            .Collapse().Padding(1, 0);
    }

    /// <summary>SIGTERM first, so the worker says goodbye to the network and hands back its attempts; killed if it hangs.</summary>
    private static async Task StopAsync(Session s, Process process)
    {
        if (process.HasExited)
            return;
        s.Host.Error.WriteLine("stopping the worker...");
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        using var timeout = new CancellationTokenSource(StopTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
            s.Host.Error.WriteLine("the worker stopped");
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            s.Host.Error.WriteLine($"the worker did not stop within {StopTimeout.TotalSeconds:0} s and was killed");
        }
    }

    private static string Tail(string log, int lines = 20)
    {
        using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(lines));
    }
}
