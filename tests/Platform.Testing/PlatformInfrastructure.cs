using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace Platform.Testing;

/// <summary>
/// The RabbitMQ and Postgres servers every test in this process shares. When ConnectionStrings__RabbitMq and
/// ConnectionStrings__Postgres are set those servers are used; otherwise scripts/infra.sh starts private ones
/// under .platform/test-&lt;pid&gt;/ on free ports and they are stopped when the process exits.
/// </summary>
public sealed class PlatformInfrastructure
{
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(120);

    // xunit 2 has no assembly fixtures: a process-wide lazy start is the closest equivalent. A failed start
    // stays failed, so every test reports the same cause instead of each one starting servers again.
    private static readonly Lazy<Task<PlatformInfrastructure>> Instance = new(StartAsync);

    /// <summary>Where and on which ports the private servers run; null when the run uses existing servers.</summary>
    private sealed record PrivateServers(string Dir, string AmqpPort, string ManagementPort, string PostgresPort, int Owner);

    private PrivateServers? _servers;

    private PlatformInfrastructure(string repoRoot, string rabbitMqUri, Uri managementUri, string postgresConnectionString)
    {
        RepoRoot = repoRoot;
        RabbitMqUri = rabbitMqUri;
        RabbitMqManagementUri = managementUri;
        PostgresConnectionString = postgresConnectionString;

        // A cluster's URI lists every node, comma-separated, with one login.
        var userInfo = new Uri(rabbitMqUri.Split(',')[0]).UserInfo.Split(':', 2);
        RabbitMqUser = Uri.UnescapeDataString(userInfo[0]);
        var password = userInfo.Length > 1 ? Uri.UnescapeDataString(userInfo[1]) : "";
        RabbitMqManagement = new HttpClient { BaseAddress = managementUri, Timeout = TimeSpan.FromSeconds(30) };
        RabbitMqManagement.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{RabbitMqUser}:{password}")));
    }

    /// <summary>The checkout: scripts/infra.sh, services/*/bin and .platform/ are found from here.</summary>
    public string RepoRoot { get; }

    /// <summary>amqp URI of the broker's default vhost, with credentials (a cluster's: one per node, comma-separated).</summary>
    public string RabbitMqUri { get; }

    /// <summary>Base address of the RabbitMQ management HTTP API.</summary>
    public Uri RabbitMqManagementUri { get; }

    /// <summary>A client for the management API (base address and credentials set), for tests that inspect queues.</summary>
    public HttpClient RabbitMqManagement { get; }

    /// <summary>Npgsql connection string of the server, without a database.</summary>
    public string PostgresConnectionString { get; }

    internal string RabbitMqUser { get; }

    /// <summary>The shared servers, started on first use.</summary>
    public static Task<PlatformInfrastructure> GetAsync() => Instance.Value;

    private static readonly Lazy<Task<PlatformInfrastructure>> ClusterInstance = new(StartClusterAsync);

    /// <summary>Where the cluster's servers run: three RabbitMQ nodes and a Postgres primary with its standby.</summary>
    private sealed record ClusterServers(string Dir, (string Amqp, string Management)[] BrokerNodes);

    private ClusterServers? _cluster;

    /// <summary>
    /// A RabbitMQ cluster of three nodes (one machine, joined as infra.sh does it) and a Postgres primary with a
    /// synchronous streaming standby, started on first use for the tests of failover; the URI lists the three nodes
    /// and the connection string both Postgres servers (the services pick whichever is the primary). Private to this
    /// process even under ./platform test: these tests kill its servers.
    /// </summary>
    public static Task<PlatformInfrastructure> GetClusterAsync() => ClusterInstance.Value;

    private static async Task<PlatformInfrastructure> StartClusterAsync()
    {
        var repoRoot = Platform.Testing.RepoRoot.Find();
        var dir = Path.Combine(repoRoot, ".platform", $"test-{Environment.ProcessId}", "cluster");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            ServiceProcess.KillAll();
            StopServers(repoRoot, dir);
        };
        var nodes = Enumerable.Range(0, 3).Select(_ => (Amqp: Format(FreePort.Next()), Management: Format(FreePort.Next()))).ToArray();
        var primaryPort = Format(FreePort.Next());
        var standbyPort = Format(FreePort.Next());
        var postgres = Task.Run(() =>
        {
            var primary = InfraScript.Run(repoRoot, ScriptTimeout, "postgres-start", Path.Combine(dir, "postgres-1"), primaryPort);
            InfraScript.Run(repoRoot, ScriptTimeout, "postgres-standby-start", Path.Combine(dir, "postgres-2"), standbyPort, Path.Combine(dir, "postgres-1"));
            return primary;
        });
        var uris = await StartJoinedNodesAsync(repoRoot, dir, i => (nodes[i].Amqp, nodes[i].Management, null));
        var primaryConnection = new Npgsql.NpgsqlConnectionStringBuilder(await postgres);
        var connection = new Npgsql.NpgsqlConnectionStringBuilder
        {
            Host = $"127.0.0.1:{primaryPort},127.0.0.1:{standbyPort}",
            Username = primaryConnection.Username,
            Password = primaryConnection.Password,
            // Writes go to whichever is the primary now; a standby refuses them. The hosts' roles are looked at again
            // every 2 s (10 by default), so the promoted standby is found soon after a failover.
            TargetSessionAttributes = "primary",
            HostRecheckSeconds = 2,
        };
        return new PlatformInfrastructure(repoRoot, string.Join(',', uris), new Uri($"http://127.0.0.1:{nodes[0].Management}/"),
            connection.ConnectionString)
        {
            _cluster = new ClusterServers(dir, nodes),
        };
    }

    /// <summary>
    /// Three RabbitMQ nodes under <paramref name="dir"/> (rabbitmq-1..3), node 1 first and each other one joining it, one
    /// at a time (in RabbitMQ 3.10 two nodes joining at once may each see the other half-joined); their amqp URIs.
    /// </summary>
    private static async Task<List<string>> StartJoinedNodesAsync(string repoRoot, string dir,
        Func<int, (string Amqp, string Management, Dictionary<string, string>? Environment)> node)
    {
        var uris = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var (amqp, management, environment) = node(i);
            string[] args = ["rabbitmq-start", Path.Combine(dir, $"rabbitmq-{i + 1}"), amqp, management, .. i > 0 ? new[] { Path.Combine(dir, "rabbitmq-1") } : []];
            uris.Add(await Task.Run(() => InfraScript.RunOwned(repoRoot, ScriptTimeout, Environment.ProcessId, environment, args)));
        }
        return uris;
    }

    private static readonly Lazy<Task<PlatformInfrastructure>> PartitionInstance = new(StartPartitionClusterAsync);

    // The namespace set's id (infra.sh netns-create) while this is the partitionable cluster.
    private string? _namespaces;

    /// <summary>
    /// The cluster's URIs reaching node 1 over its direct link (nodes 2 and 3 over the bridge), for the services that
    /// still reach node 1 while <see cref="CutBrokerNodeAsync"/> has it cut off; null but for the partitionable cluster.
    /// </summary>
    public string? DirectRabbitMqUri { get; private init; }

    /// <summary>
    /// Three RabbitMQ nodes in one cluster, each in a network namespace of its own joined to this machine by a bridge
    /// (and node 1 also by a direct link), and a Postgres of their own, for partition tests (infra.sh netns-create).
    /// Root only, as network namespaces are. The management API is node 2's: node 1 is the one cut off.
    /// </summary>
    public static Task<PlatformInfrastructure> GetPartitionableClusterAsync() => PartitionInstance.Value;

    private static async Task<PlatformInfrastructure> StartPartitionClusterAsync()
    {
        var repoRoot = Platform.Testing.RepoRoot.Find();
        var id = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var dir = Path.Combine(repoRoot, ".platform", $"test-{id}", "partition");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            ServiceProcess.KillAll();
            StopServers(repoRoot, dir);
            try
            {
                InfraScript.Run(repoRoot, ScriptTimeout, "netns-delete", id);
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"Platform.Testing: deleting network namespaces {id} failed: {ex.Message}");
            }
        };
        await Task.Run(() => InfraScript.Run(repoRoot, ScriptTimeout, "netns-create", id, "3"));
        var postgres = Task.Run(() => InfraScript.Run(repoRoot, ScriptTimeout, "postgres-start", Path.Combine(dir, "postgres-1"), Format(FreePort.Next())));
        // Each node in its namespace, on the same ports: the namespaces are separate network stacks.
        var uris = await StartJoinedNodesAsync(repoRoot, dir, i => ("5672", "15672",
            new Dictionary<string, string> { ["PLATFORM_RABBITMQ_NETNS"] = $"plat{id}n{i + 1}", ["PLATFORM_RABBITMQ_IP"] = $"10.213.0.{i + 1}" }));
        return new PlatformInfrastructure(repoRoot, string.Join(',', uris), new Uri("http://10.213.0.2:15672/"), await postgres)
        {
            _namespaces = id,
            DirectRabbitMqUri = string.Join(',', [uris[0].Replace("@10.213.0.1:", "@10.214.1.1:", StringComparison.Ordinal), .. uris.Skip(1)]),
        };
    }

    private string Namespaces => _namespaces ?? throw new InvalidOperationException("only the partitionable cluster's links are cut");

    /// <summary>Takes node <paramref name="node"/>'s (0-2) cluster link down: it loses the other nodes and every service reaching it over the bridge.</summary>
    public Task CutBrokerNodeAsync(int node) =>
        Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "netns-cut", Namespaces, Format(node + 1)));

    /// <summary>Brings node <paramref name="node"/>'s cluster link back.</summary>
    public Task HealBrokerNodeAsync(int node) =>
        Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "netns-heal", Namespaces, Format(node + 1)));

    private ClusterServers Cluster => _cluster ?? throw new InvalidOperationException("only the cluster's servers are killed by tests");

    /// <summary>Kills RabbitMQ node <paramref name="node"/> (0-2) of the cluster, as a crashed machine: no clean shutdown.</summary>
    public Task KillBrokerNodeAsync(int node) =>
        Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "rabbitmq-stop", Path.Combine(Cluster.Dir, $"rabbitmq-{node + 1}"), "--kill"));

    /// <summary>The index (0-2) of the cluster's node named <paramref name="nodeName"/> (<c>platform-AMQPPORT@localhost</c>).</summary>
    public int BrokerNodeIndex(string nodeName) =>
        Array.FindIndex(Cluster.BrokerNodes, n => nodeName.StartsWith($"platform-{n.Amqp}@", StringComparison.Ordinal)) is var i and >= 0
            ? i
            : throw new InvalidOperationException($"{nodeName} is not a node of the cluster");

    /// <summary>Starts a killed node of the cluster again on its ports and data; it rejoins the cluster.</summary>
    public Task StartBrokerNodeAsync(int node) =>
        Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "rabbitmq-start", Path.Combine(Cluster.Dir, $"rabbitmq-{node + 1}"),
            Cluster.BrokerNodes[node].Amqp, Cluster.BrokerNodes[node].Management));

    /// <summary>
    /// Kills the Postgres primary (immediate shutdown: no checkpoint, as a crash) and promotes the standby, which
    /// takes writes from then on. Once only: there is no standby left after it.
    /// </summary>
    public async Task FailOverPostgresAsync()
    {
        await Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "postgres-stop", Path.Combine(Cluster.Dir, "postgres-1"), "--kill"));
        await Task.Run(() => InfraScript.Run(RepoRoot, ScriptTimeout, "postgres-promote", Path.Combine(Cluster.Dir, "postgres-2")));
    }

    /// <summary>A fresh vhost and database-name prefix, so tests sharing the servers never see each other's data.</summary>
    public async Task<TestEnvironment> CreateEnvironmentAsync(string name)
    {
        var environment = new TestEnvironment(this, name);
        await environment.CreateVirtualHostAsync();
        return environment;
    }

    private static async Task<PlatformInfrastructure> StartAsync()
    {
        var repoRoot = Platform.Testing.RepoRoot.Find();

        // Registered before anything starts, so a half-finished start is cleaned up too.
        string? ownDir = null;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            ServiceProcess.KillAll();
            if (ownDir is not null)
            {
                StopServers(repoRoot, ownDir);
            }
        };

        var rabbitMq = Environment.GetEnvironmentVariable("ConnectionStrings__RabbitMq");
        var postgres = Environment.GetEnvironmentVariable("ConnectionStrings__Postgres");
        if (!string.IsNullOrEmpty(rabbitMq) || !string.IsNullOrEmpty(postgres))
        {
            if (string.IsNullOrEmpty(rabbitMq) || string.IsNullOrEmpty(postgres))
            {
                throw new InvalidOperationException(
                    "Set both ConnectionStrings__RabbitMq and ConnectionStrings__Postgres to use existing servers, or neither to start private ones.");
            }

            var management = Environment.GetEnvironmentVariable("ConnectionStrings__RabbitMqManagement");
            var managementUri = string.IsNullOrEmpty(management)
                ? new UriBuilder("http", new Uri(rabbitMq).Host, 15672).Uri
                : new Uri(management.EndsWith('/') ? management : management + "/");
            // ./platform test starts the run's servers itself and says where, so they may be restarted too.
            var own = Environment.GetEnvironmentVariable("PLATFORM_TEST_SERVERS")?.Split(';');
            return new PlatformInfrastructure(repoRoot, rabbitMq, managementUri, postgres)
            {
                _servers = own is [var runDir, var amqp, var mgmt, var pg, var owner]
                    ? new PrivateServers(runDir, amqp, mgmt, pg, int.Parse(owner, CultureInfo.InvariantCulture))
                    : null,
            };
        }

        RemoveStaleRuns(repoRoot);
        var dir = Path.Combine(repoRoot, ".platform", $"test-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ownDir = dir;

        var amqpPort = Format(FreePort.Next());
        var managementPort = FreePort.Next();
        var postgresPort = Format(FreePort.Next());
        // Both take seconds (RabbitMQ about 15 on first boot): start them side by side.
        var rabbitStart = Task.Run(() => InfraScript.Run(
            repoRoot, ScriptTimeout, "rabbitmq-start", Path.Combine(dir, "rabbitmq"), amqpPort, Format(managementPort)));
        var postgresStart = Task.Run(() => InfraScript.Run(
            repoRoot, ScriptTimeout, "postgres-start", Path.Combine(dir, "postgres"), postgresPort));
        await Task.WhenAll(rabbitStart, postgresStart);

        return new PlatformInfrastructure(
            repoRoot, await rabbitStart, new Uri($"http://127.0.0.1:{managementPort}/"), await postgresStart)
        {
            _servers = new PrivateServers(dir, amqpPort, Format(managementPort), postgresPort, Environment.ProcessId),
        };
    }

    /// <summary>
    /// Stops the run's RabbitMQ cleanly and starts it again on the same ports with the same data (vhosts, durable
    /// queues and persistent messages survive), as an operator's restart or a crash-and-recover would. Only for
    /// private servers: a chaos test must not restart someone else's broker.
    /// </summary>
    public Task RestartRabbitMqAsync() => WithRabbitMqStoppedAsync(() => Task.CompletedTask);

    /// <summary>
    /// An outage of the run's RabbitMQ: stopped cleanly, <paramref name="during"/> run while it is down (as long as the
    /// outage is to last, with whatever load and checks it makes), then started again on the same ports and data.
    /// </summary>
    public Task WithRabbitMqStoppedAsync(Func<Task> during) => WithStoppedAsync("rabbitmq", during, s => [s.AmqpPort, s.ManagementPort]);

    /// <summary>The same for Postgres: stopped (fast shutdown) and started again on the same port and data.</summary>
    public Task RestartPostgresAsync() => WithPostgresStoppedAsync(() => Task.CompletedTask);

    /// <summary>An outage of the run's Postgres, as <see cref="WithRabbitMqStoppedAsync"/>.</summary>
    public Task WithPostgresStoppedAsync(Func<Task> during) => WithStoppedAsync("postgres", during, s => [s.PostgresPort]);

    /// <summary>infra.sh's <c>SERVER-stop</c>, <paramref name="during"/>, then <c>SERVER-start</c> with its folder and ports.</summary>
    private async Task WithStoppedAsync(string server, Func<Task> during, Func<PrivateServers, string[]> ports)
    {
        var servers = _servers ?? throw new InvalidOperationException("the run uses existing servers, which tests do not stop");
        var dir = Path.Combine(servers.Dir, server);
        await Task.Run(() => InfraScript.RunOwned(RepoRoot, ScriptTimeout, servers.Owner, $"{server}-stop", dir));
        try
        {
            await during();
        }
        finally
        {
            await Task.Run(() => InfraScript.RunOwned(RepoRoot, ScriptTimeout, servers.Owner, [$"{server}-start", dir, .. ports(servers)]));
        }
    }


    // The servers are throwaway: killed, not shut down cleanly, and deleted. Under dotnet test this races vstest,
    // which kills the test process 100 ms after the run; infra.sh's watchdog finishes the job if it loses.
    // Nothing may throw from the exit handler.
    // Each server's folder is named after its kind (rabbitmq, postgres, or cluster/rabbitmq-2...).
    private static void StopServers(string repoRoot, string dir)
    {
        var folders = Directory.Exists(dir)
            ? Directory.GetDirectories(dir).Concat(Directory.Exists(Path.Combine(dir, "cluster")) ? Directory.GetDirectories(Path.Combine(dir, "cluster")) : [])
            : [];
        var stops = folders
            .Select(folder => (Folder: folder, Server: Path.GetFileName(folder).Split('-')[0]))
            .Where(f => f.Server is "rabbitmq" or "postgres")
            .Select(f => Task.Run(() => InfraScript.Run(repoRoot, ScriptTimeout, $"{f.Server}-stop", f.Folder, "--discard")))
            .ToArray();
        try
        {
            Task.WaitAll(stops);
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"Platform.Testing: cleaning up {dir} failed: {ex.Message}");
        }
    }

    // Leftovers of test processes that died before their servers were discarded (normally infra.sh's watchdog
    // removes them within a second of the process exiting).
    private static void RemoveStaleRuns(string repoRoot)
    {
        var platformDir = Path.Combine(repoRoot, ".platform");
        if (!Directory.Exists(platformDir))
        {
            return;
        }

        foreach (var dir in Directory.GetDirectories(platformDir, "test-*"))
        {
            if (int.TryParse(Path.GetFileName(dir)["test-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && !IsRunning(pid))
            {
                StopServers(repoRoot, dir);
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string Format(int port) => port.ToString(CultureInfo.InvariantCulture);
}
