using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

public sealed record Account(string AccountId, string Role, string Name, string Key);

/// <summary>
/// The whole network as real processes (gateway, storage, rewards, scheduler and one worker) on the run's
/// RabbitMQ and Postgres, in a vhost and databases of its own. Schedulers get the broker's management API (from
/// <see cref="ServiceProcess"/>) to make node users; workers enroll through the gateway for their broker login.
/// </summary>
public class Network : IAsyncLifetime
{
    private readonly List<ServiceProcess> _services = [];
    private readonly string _dataRoot = Path.Combine(Path.GetTempPath(), "platform-e2e-" + Guid.NewGuid().ToString("n"));

    public TestEnvironment Environment { get; private set; } = null!;
    public ServiceProcess Gateway { get; private set; } = null!;
    public ServiceProcess? Worker { get; private set; }
    public IReadOnlyList<ServiceProcess> Services => _services;
    public string AdminKey { get; } = "pk_admin_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The gateway's Platform:KeyHashSecret, random per network.</summary>
    public string KeyHashSecret { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
    public Account Operator { get; private set; } = null!;

    public virtual async Task InitializeAsync()
    {
        Environment = await (await InfrastructureAsync()).CreateEnvironmentAsync("e2e");
        var storageSettings = new Dictionary<string, string?> { ["Storage__RootPath"] = Path.Combine(_dataRoot, "storage"), ["Storage__NodeId"] = "storage-1" };
        foreach (var (name, value) in StorageSettings)
            storageSettings[name] = value;
        var storage = await StartAsync("storage", storageSettings);
        var rewards = await StartAsync("rewards");
        for (var i = 0; i < Schedulers; i++)
            await StartAsync("scheduler", SchedulerSettings);
        var gatewaySettings = new Dictionary<string, string?>
        {
            ["Platform__AdminKey"] = AdminKey,
            ["Platform__KeyHashSecret"] = KeyHashSecret,
            ["Upstreams__Storage"] = storage.BaseUrl.ToString(),
            ["Upstreams__Rewards"] = rewards.BaseUrl.ToString(),
            ["Upstreams__Scheduler"] = _services.First(s => s.Service == "scheduler").BaseUrl.ToString(),
        };
        foreach (var (name, value) in GatewaySettings)
            gatewaySettings[name] = value;
        Gateway = await StartAsync("gateway", gatewaySettings);
        Operator = await CreateOperatorAsync();
        if (StartsWorker)
            Worker = await StartWorkerAsync(Operator.Key, settings: FirstWorkerSettings);
    }

    /// <summary>Settings of the worker the network starts with (<see cref="StartsWorker"/>) beyond the defaults.</summary>
    protected virtual Dictionary<string, string?>? FirstWorkerSettings => null;

    /// <summary>Settings every worker this network starts gets (a call's own settings override them).</summary>
    protected virtual Dictionary<string, string?> WorkerSettings => [];

    /// <summary>The servers this network runs on: the run's shared RabbitMQ and Postgres unless a network says otherwise.</summary>
    protected virtual Task<PlatformInfrastructure> InfrastructureAsync() => PlatformInfrastructure.GetAsync();

    /// <summary>Storage settings beyond the defaults here.</summary>
    protected virtual Dictionary<string, string?> StorageSettings => [];

    /// <summary>Gateway settings beyond the defaults here.</summary>
    protected virtual Dictionary<string, string?> GatewaySettings => [];

    /// <summary>
    /// Gateway settings that lift the per-key rate limits, for suites that send hundreds of requests with one key
    /// in a few seconds and must see the answer to each, not a 429 (how fast the test machine submits decides
    /// whether a bucket runs dry, so a test that is not about rate limits must not depend on one).
    /// </summary>
    protected static Dictionary<string, string?> WithoutRateLimits => new()
    {
        ["Limits__ClientPerSecond"] = "1000000",
        ["Limits__ClientBurst"] = "1000000",
        ["Limits__OperatorPerSecond"] = "1000000",
        ["Limits__OperatorBurst"] = "1000000",
        ["Limits__AnonymousPerSecond"] = "1000000",
        ["Limits__AnonymousBurst"] = "1000000",
    };

    /// <summary>How many scheduler instances share the database and broker.</summary>
    protected virtual int Schedulers => 1;

    /// <summary>Whether a worker of <see cref="Operator"/> is started with the network.</summary>
    protected virtual bool StartsWorker => true;

    /// <summary>
    /// Whether single-replica jobs are spot-checked (adaptive trust). Off by default, so what a test's jobs cost
    /// and earn does not depend on which results get checked; the verification tests turn it on.
    /// </summary>
    protected virtual bool SpotChecks => false;

    /// <summary>Scheduler settings beyond the defaults here, or overriding them.</summary>
    protected virtual Dictionary<string, string?> SchedulerOverrides => [];

    // Workers beat every second; the scheduler allows for two-second beats (a lost worker gets no new work after
    // six, and loses its running work after the six-second grace period), which keeps a busy two-core test
    // machine from losing live workers.
    private Dictionary<string, string?> SchedulerSettings
    {
        get
        {
            var settings = new Dictionary<string, string?>
            {
                ["Scheduler__HeartbeatInterval"] = "00:00:02",
                ["Scheduler__LeaseDuration"] = "00:00:10",
                ["Scheduler__GracePeriod"] = "00:00:06",
                ["Scheduler__SpotChecks"] = SpotChecks ? "true" : "false",
                ["Scheduler__StorageUrl"] = _services.First(s => s.Service == "storage").BaseUrl.ToString(),
            };
            foreach (var (name, value) in SchedulerOverrides)
                settings[name] = value;
            return settings;
        }
    }

    // Compiled OpenCL programs are shared by every worker of the run, so PoCL compiles each kernel once.
    private static readonly string KernelCache = Platform.Testing.Kernels.KernelCache.Directory;

    /// <param name="settings">Worker settings beyond the defaults here, or overriding them.</param>
    /// <param name="operatorKey">The operator the worker runs for: a node key is made with it, and the worker gets only that.</param>
    public async Task<ServiceProcess> StartWorkerAsync(string operatorKey, int slots = 1, string region = "local", Dictionary<string, string?>? settings = null)
    {
        // Only what an operator's machine has: the gateway's URL and a node key its operator made (never the
        // operator's key: the worker enrolls with the node key and gets a broker login of its own; ServiceProcess
        // passes it no connection string) and non-secret options.
        var env = new Dictionary<string, string?>
        {
            ["Worker__Region"] = region,
            ["Worker__NodeKey"] = await CreateNodeKeyAsync(operatorKey),
            ["Worker__GatewayUrl"] = Gateway.BaseUrl.ToString(),
            ["Worker__DataDirectory"] = Path.Combine(_dataRoot, "worker-" + Guid.NewGuid().ToString("n")),
            ["Worker__KernelCacheDirectory"] = KernelCache,
            ["Worker__HeartbeatInterval"] = "00:00:01",
            ["Worker__Slots"] = slots.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        foreach (var (name, value) in WorkerSettings.Concat(settings ?? []))
            env[name] = value;
        return await StartAsync("worker", env);
    }

    /// <summary>Settings for every service (not the workers) beyond the defaults here.</summary>
    protected virtual Dictionary<string, string?> ServiceSettings => [];

    /// <summary>Settings for one service (not a worker): <see cref="ServiceSettings"/> unless a network says otherwise.</summary>
    protected virtual Dictionary<string, string?> SettingsFor(string service) => ServiceSettings;

    private async Task<ServiceProcess> StartAsync(string service, Dictionary<string, string?>? env = null)
    {
        if (service != "worker")
        {
            env = env is null ? [] : new Dictionary<string, string?>(env);
            foreach (var (name, value) in SettingsFor(service))
                env.TryAdd(name, value);
        }
        var process = await ServiceProcess.StartAsync(service, Environment, env);
        _services.Add(process);
        return process;
    }

    /// <summary>Crashes a service of this network and starts it again on the same port (see <see cref="ServiceProcess.RestartAsync"/>).</summary>
    public async Task<ServiceProcess> RestartAsync(ServiceProcess service)
    {
        var restarted = await service.RestartAsync();
        _services[_services.IndexOf(service)] = restarted;
        if (service == Gateway)
            Gateway = restarted;
        if (service == Worker)
            Worker = restarted;
        return restarted;
    }

    /// <summary>
    /// Runs <paramref name="during"/> while <paramref name="service"/>'s database refuses connections (its open ones
    /// cut), as if the database were down for that service alone; connections are allowed again however it ends.
    /// </summary>
    public async Task<T> WhileDatabaseDownAsync<T>(string service, Func<Task<T>> during)
    {
        // Connected to another service's database: terminating the target's connections must not end this one.
        await using var admin = new Npgsql.NpgsqlConnection(Environment.PostgresConnectionStringFor(service == "gateway" ? "rewards" : "gateway"));
        await admin.OpenAsync();
        var database = new Npgsql.NpgsqlConnectionStringBuilder(Environment.PostgresConnectionStringFor(service)).Database!;
        await Dapper.SqlMapper.ExecuteAsync(admin, $"alter database \"{database}\" allow_connections false");
        try
        {
            await Dapper.SqlMapper.ExecuteAsync(admin, "select pg_terminate_backend(pid) from pg_stat_activity where datname = @database", new { database });
            return await during();
        }
        finally
        {
            await Dapper.SqlMapper.ExecuteAsync(admin, $"alter database \"{database}\" allow_connections true");
        }
    }

    public HttpClient Client(string? key)
    {
        var http = new HttpClient { BaseAddress = Gateway.BaseUrl };
        if (key is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    public async Task<Account> CreateAccountAsync(string role, decimal credits)
    {
        using var admin = Client(AdminKey);
        using var response = await admin.PostAsJsonAsync("/v1/admin/accounts", new { role, name = $"{role} {Guid.NewGuid():n}", credits });
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Account>())!;
    }

    /// <summary>A node key made with <paramref name="operatorKey"/> (POST /v1/account/node-keys) for one worker.</summary>
    public async Task<string> CreateNodeKeyAsync(string operatorKey)
    {
        using var http = Client(operatorKey);
        using var response = await http.PostAsJsonAsync("/v1/account/node-keys", new { workers = 1 });
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, $"making a node key failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<NodeKey>())!.Key;
    }

    public sealed record NodeKey(string Id, string Key);

    /// <summary>The stake the scheduler asks of operators by default (Scheduler:MinimumStake).</summary>
    public const decimal OperatorStake = 10m;

    /// <summary>
    /// An operator account that has staked the minimum, so its workers get work; its balance starts at zero, so
    /// everything it holds later it earned.
    /// </summary>
    public async Task<Account> CreateOperatorAsync()
    {
        var account = await CreateAccountAsync("operator", OperatorStake);
        using var http = Client(account.Key);
        using var response = await http.PostAsJsonAsync("/v1/account/stake", new { amount = OperatorStake });
        Assert.True(response.IsSuccessStatusCode, $"staking failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return account;
    }

    public virtual Task DisposeAsync() => Teardown.StopAsync(_services, Environment, _dataRoot);
}

/// <summary>The network without a worker: tests start the workers they need.</summary>
public sealed class BareNetwork : Network
{
    protected override bool StartsWorker => false;
}

/// <summary>The network with the gateway's per-key rate limits lifted (<see cref="Network.WithoutRateLimits"/>).</summary>
public sealed class UnlimitedNetwork : Network
{
    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;
}

/// <summary>Two scheduler instances on one database and broker, no worker yet, and no rate limit on the thousand submits.</summary>
public sealed class TwoSchedulerNetwork : Network
{
    protected override int Schedulers => 2;

    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;

    protected override bool StartsWorker => false;
}

/// <summary>
/// The network on a RabbitMQ cluster of three nodes with quorum queues and a Postgres primary with a synchronous
/// standby (<see cref="PlatformInfrastructure.GetClusterAsync"/>), every service given all the addresses; workers are
/// started by the test.
/// </summary>
public sealed class ClusterNetwork : Network
{
    protected override Task<PlatformInfrastructure> InfrastructureAsync() => PlatformInfrastructure.GetClusterAsync();

    protected override Dictionary<string, string?> ServiceSettings => new(ConnectionLogging) { ["RabbitMq__QuorumQueues"] = "true" };

    protected override Dictionary<string, string?> WorkerSettings => ConnectionLogging;

    /// <summary>
    /// MassTransit's connection, endpoint and transport-retry lines (Debug), without its line per message sent and
    /// received (MassTransit.Messages): if a failover is ever slow, they show which process waited for what
    /// (ChaosRun prints them).
    /// </summary>
    private static Dictionary<string, string?> ConnectionLogging => new()
    {
        ["Logging__LogLevel__MassTransit"] = "Debug",
        ["Logging__LogLevel__MassTransit.Messages"] = "Information",
    };

    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;

    protected override bool StartsWorker => false;
}

/// <summary>
/// The network on a RabbitMQ cluster whose nodes each live in a network namespace of their own
/// (<see cref="PlatformInfrastructure.GetPartitionableClusterAsync"/>), with quorum queues. Half the services (the
/// gateway and rewards) reach node 1 over its direct link, the others (scheduler, storage, and the workers, which
/// get the scheduler's addresses) over the bridge, so cutting node 1's cluster link cuts it off from the other nodes
/// and from half the services. Workers are started by the test.
/// </summary>
public sealed class PartitionNetwork : Network
{
    protected override Task<PlatformInfrastructure> InfrastructureAsync() => PlatformInfrastructure.GetPartitionableClusterAsync();

    protected override Dictionary<string, string?> SettingsFor(string service)
    {
        var settings = new Dictionary<string, string?> { ["RabbitMq__QuorumQueues"] = "true" };
        if (service is "gateway" or "rewards")
            settings["ConnectionStrings__RabbitMq"] = Environment.DirectRabbitMqUri;
        return settings;
    }

    protected override Dictionary<string, string?> GatewaySettings => WithoutRateLimits;

    protected override bool StartsWorker => false;
}
