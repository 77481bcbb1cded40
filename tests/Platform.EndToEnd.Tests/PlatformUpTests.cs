using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// The README's front door, run as the README runs it: <c>./platform up --detach</c> from the repository root, with
/// its own RabbitMQ and Postgres, services and a node, in a state folder of the test's own and on free ports. The
/// other end-to-end tests start each service from its own folder, so they cannot see what depends on the working
/// directory (the dashboard once answered 404 under <c>up</c> for exactly that reason). One stack for the class.
/// </summary>
public sealed class PlatformUpTests(PlatformUp up) : IClassFixture<PlatformUp>
{
    [Fact]
    public async Task The_dashboard_answers_at_the_root_under_platform_up()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{up.GatewayPort}"), Timeout = TimeSpan.FromSeconds(30) };

        foreach (var path in new[] { "/", "/index.html" })
        {
            using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path} answered {(int)response.StatusCode}: {body[..Math.Min(body.Length, 300)]}");
            Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("<title>Platform</title>", body, StringComparison.Ordinal);
        }

        // The dashboard's scripts come from the same folder.
        using var script = await http.GetAsync(new Uri("/js/app.js", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
    }

    /// <summary>
    /// The node up starts holds the node key up made for it (kept in its data folder), never its operator's key,
    /// and that node key may not act as the operator.
    /// </summary>
    [Fact]
    public async Task The_node_platform_up_starts_holds_a_node_key_and_not_its_operators_key()
    {
        var pid = (await File.ReadAllTextAsync(Path.Combine(up.State, "pids", "worker-1"))).Trim();
        var environ = (await File.ReadAllTextAsync($"/proc/{pid}/environ")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        var operatorKey = (await File.ReadAllTextAsync(Path.Combine(up.State, "operator-1.key"))).Trim();
        var nodeKey = (await File.ReadAllTextAsync(Path.Combine(up.State, "worker-1", "node-key"))).Trim().Split(' ')[1];

        Assert.Contains($"Worker__NodeKey={nodeKey}", environ);
        Assert.False(environ.Any(e => e.Contains(operatorKey, StringComparison.Ordinal)), "the node's environment holds its operator's key");
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{up.GatewayPort}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", nodeKey);
        using var account = await http.GetAsync(new Uri("/v1/account", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, account.StatusCode);
    }
}

/// <summary>
/// <c>./platform up --detach --cluster</c>: the network on three RabbitMQ nodes in one cluster and a Postgres primary
/// with a synchronous standby, as docs/SCALING.md describes it, runs a job.
/// </summary>
public sealed class PlatformUpClusterTests(PlatformUpCluster up) : IClassFixture<PlatformUpCluster>
{
    [Fact]
    public async Task Platform_up_cluster_runs_a_job_on_a_three_node_broker_cluster_and_a_primary_with_a_synchronous_standby()
    {
        // Three broker nodes, running and joined.
        var brokerPassword = (await File.ReadAllTextAsync(Path.Combine(up.State, "cluster", "rabbitmq-1", "password"))).Trim();
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{up.Port("PLATFORM_RABBITMQ_MGMT_PORT")}/") };
        management.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"platform:{brokerPassword}")));
        using var nodes = System.Text.Json.JsonDocument.Parse(await management.GetStringAsync(new Uri("api/nodes", UriKind.Relative)));
        Assert.Equal(3, nodes.RootElement.EnumerateArray().Count(n => n.GetProperty("running").GetBoolean()));
        // The services' queues are quorum queues.
        using var queues = System.Text.Json.JsonDocument.Parse(await management.GetStringAsync(new Uri("api/queues/%2F/scheduler-job-submitted", UriKind.Relative)));
        Assert.Equal("quorum", queues.RootElement.GetProperty("type").GetString());
        // The standby streams from the primary, synchronously.
        var postgresPassword = (await File.ReadAllTextAsync(Path.Combine(up.State, "cluster", "postgres-1", "password"))).Trim();
        await using (var primary = new Npgsql.NpgsqlConnection($"Host=127.0.0.1;Port={up.Port("PLATFORM_POSTGRES_PORT")};Username=platform;Password={postgresPassword};Database=postgres"))
        {
            await primary.OpenAsync();
            await using var replication = new Npgsql.NpgsqlCommand("select sync_state from pg_stat_replication where application_name = 'standby'", primary);
            Assert.Equal("sync", await replication.ExecuteScalarAsync());
        }

        // A job runs end to end on it.
        using var admin = up.Client((await File.ReadAllTextAsync(Path.Combine(up.State, "admin.key"))).Trim());
        using var created = await admin.PostAsJsonAsync("/v1/admin/accounts", new { role = "client", name = "cluster client", credits = 10m });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var client = up.Client((await created.Content.ReadFromJsonAsync<Account>())!.Key);
        var vector = await client.PinAsync(Platform.Contracts.Tensors.NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4));
        using var submitted = await client.SubmitAsync(new { kernel = "vector-add", inputs = new { a = vector.Cid, b = vector.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await client.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "the job ended");
        Assert.Equal("completed", done.Status);
    }
}

/// <summary><c>./platform up --detach</c> with <c>--cluster</c>.</summary>
public sealed class PlatformUpCluster : PlatformUp
{
    protected override bool Cluster => true;
}

/// <summary><c>./platform up --detach</c> in a state folder and on ports of its own; <c>down</c> at the end.</summary>
public class PlatformUp : IAsyncLifetime
{
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(6);
    private readonly string root = RepoRoot.Find();
    private readonly string state;
    private readonly Dictionary<string, string> ports;
    private readonly int gatewayPort;

    public string State => state;

    public int GatewayPort => gatewayPort;

    /// <summary>Whether up runs the cluster layout (<c>--cluster</c>).</summary>
    protected virtual bool Cluster => false;

    /// <summary>The port given to up as <paramref name="setting"/> (PLATFORM_RABBITMQ_MGMT_PORT...).</summary>
    public string Port(string setting) => ports[setting];

    /// <summary>A client of the gateway with <paramref name="key"/>.</summary>
    public HttpClient Client(string key)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gatewayPort}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    public PlatformUp()
    {
        state = Path.Combine(root, ".platform", $"test-up-{Guid.NewGuid():N}"[..20]);
        gatewayPort = FreePort.Next();
        // up gives node i the port base + i (one node here): both base and base + 1 must be reserved, or another port
        // taken here (FreePort hands them out in order) is base + 1 and the node cannot bind it.
        var workerBase = FreePort.Next();
        var node = FreePort.Next();
        while (node != workerBase + 1)
            (workerBase, node) = (node, FreePort.Next());
        ports = new Dictionary<string, string>
        {
            ["PLATFORM_GATEWAY_PORT"] = gatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PLATFORM_STORAGE_PORT"] = Port(),
            ["PLATFORM_SCHEDULER_PORT"] = Port(),
            ["PLATFORM_REWARDS_PORT"] = Port(),
            ["PLATFORM_WORKER_BASE_PORT"] = workerBase.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // A cluster's three nodes take these ports and the next two, its standby the next one.
            ["PLATFORM_RABBITMQ_PORT"] = Consecutive(3),
            ["PLATFORM_RABBITMQ_MGMT_PORT"] = Consecutive(3),
            ["PLATFORM_POSTGRES_PORT"] = Consecutive(2),
        };

        static string Port() => FreePort.Next().ToString(System.Globalization.CultureInfo.InvariantCulture);

        // The first of `count` consecutive free ports, all reserved (FreePort hands them out in order, mostly).
        static string Consecutive(int count)
        {
            var run = new List<int> { FreePort.Next() };
            while (run.Count < count)
            {
                var next = FreePort.Next();
                run = next == run[^1] + 1 ? [.. run, next] : [next];
            }
            return run[0].ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    public async Task InitializeAsync()
    {
        var (code, output) = Cluster ? await RunAsync("up", "--detach", "--cluster") : await RunAsync("up", "--detach");
        Assert.True(code == 0, $"./platform up --detach{(Cluster ? " --cluster" : "")} exited {code}:\n{Tail(output)}\n{ServiceLogs()}");
    }

    public async Task DisposeAsync()
    {
        await RunAsync("down");
        try
        {
            Directory.Delete(state, recursive: true);
        }
        catch (IOException)
        {
            // A server's last write can race the delete; the folder is under .platform/ and ignored by git.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private async Task<(int Code, string Output)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(root, "platform"));
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        // up must start its own servers, as it does for a reader of the README: drop what ./platform test exported.
        foreach (var name in new[] { "ConnectionStrings__RabbitMq", "ConnectionStrings__RabbitMqManagement", "ConnectionStrings__Postgres", "PLATFORM_TEST_SERVERS", "Platform__AdminKey", "Platform__KeyHashSecret" })
            start.Environment.Remove(name);
        foreach (var (name, value) in ports)
            start.Environment[name] = value;
        start.Environment["PLATFORM_STATE"] = state;
        start.Environment["PLATFORM_WORKERS"] = "1";
        // Built already by the test run; a second build would rewrite the binaries other tests start.
        start.Environment["PLATFORM_SKIP_BUILD"] = "1";
        // If this test process dies, the servers up started stop by themselves (scripts/infra.sh's watchdog).
        start.Environment["PLATFORM_INFRA_OWNER_PID"] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(UpTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        output.Append(await stdout).Append(await stderr);
        return (process.ExitCode, output.ToString());
    }

    private string ServiceLogs()
    {
        var logs = Path.Combine(state, "logs");
        if (!Directory.Exists(logs))
            return "(no service logs)";
        return string.Join("\n", Directory.GetFiles(logs, "*.log").Select(f => $"--- {Path.GetFileName(f)}\n{Tail(File.ReadAllText(f))}"));
    }

    private static string Tail(string text) => text.Length <= 3000 ? text : text[^3000..];
}
