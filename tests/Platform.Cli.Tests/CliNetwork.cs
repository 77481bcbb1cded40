using System.Globalization;
using System.Security.Cryptography;
using Platform.Client;
using Platform.Contracts.Api;
using Platform.Testing;

namespace Platform.Cli.Tests;

/// <summary>
/// The whole network as real processes (storage, rewards, scheduler, gateway and one staked operator's worker) on
/// the run's RabbitMQ and Postgres, as tests/Platform.EndToEnd.Tests/Network.cs starts it; only what the command
/// line's tests need is copied here, so this project does not depend on another test project.
/// </summary>
public sealed class CliNetwork : IAsyncLifetime
{
    /// <summary>The stake the scheduler asks of operators by default (Scheduler:MinimumStake).</summary>
    public const decimal OperatorStake = 10m;

    private readonly List<ServiceProcess> _services = [];
    private readonly string _dataRoot = Path.Combine(Path.GetTempPath(), "platform-cli-e2e-" + Guid.NewGuid().ToString("n"));

    public TestEnvironment Environment { get; private set; } = null!;
    public ServiceProcess Gateway { get; private set; } = null!;
    public string AdminKey { get; } = "pk_admin_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The operator whose staked node runs the network's jobs.</summary>
    public CreateAccountResponse Operator { get; private set; } = null!;

    /// <summary>The gateway's Platform:KeyHashSecret, random per network.</summary>
    public string KeyHashSecret { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public async Task InitializeAsync()
    {
        Environment = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("cli");
        var storage = await StartAsync("storage", new() { ["Storage__RootPath"] = Path.Combine(_dataRoot, "storage"), ["Storage__NodeId"] = "storage-1" });
        var rewards = await StartAsync("rewards");
        var scheduler = await StartAsync("scheduler", new()
        {
            // Workers beat every second; two-second beats allowed keep a busy two-core machine from losing them.
            ["Scheduler__HeartbeatInterval"] = "00:00:02",
            ["Scheduler__LeaseDuration"] = "00:00:10",
            ["Scheduler__SpotChecks"] = "false",
            // A sample a second, so the history endpoints have something to answer within a test.
            ["Scheduler__HistoryInterval"] = "00:00:01",
            ["Scheduler__StorageUrl"] = storage.BaseUrl.ToString(),
        });
        Gateway = await StartAsync("gateway", new()
        {
            ["Platform__AdminKey"] = AdminKey,
            ["Platform__KeyHashSecret"] = KeyHashSecret,
            ["Upstreams__Storage"] = storage.BaseUrl.ToString(),
            ["Upstreams__Rewards"] = rewards.BaseUrl.ToString(),
            ["Upstreams__Scheduler"] = scheduler.BaseUrl.ToString(),
        });

        // An operator that has staked the minimum, so its worker gets work.
        var operatorAccount = Operator = await CreateAccountAsync("operator", OperatorStake);
        NodeKeyCreated nodeKey;
        using (var operatorClient = Client(operatorAccount.Key))
        {
            try
            {
                await operatorClient.StakeAsync(OperatorStake);
            }
            catch (PlatformApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                throw new InvalidOperationException(
                    "POST /v1/account/stake answered 404: this build has no stake endpoint yet, and operators must stake before their workers get work", e);
            }
            nodeKey = await operatorClient.CreateNodeKeyAsync();
        }
        // The node gets a node key its operator made, never the operator's key.
        await StartAsync("worker", new()
        {
            ["ConnectionStrings__Postgres"] = null,
            ["Worker__NodeKey"] = nodeKey.Key,
            ["Worker__GatewayUrl"] = Gateway.BaseUrl.ToString(),
            ["Worker__DataDirectory"] = Path.Combine(_dataRoot, "worker"),
            ["Worker__KernelCacheDirectory"] = Platform.Testing.Kernels.KernelCache.Directory,
            ["Worker__HeartbeatInterval"] = "00:00:01",
            ["Worker__Slots"] = 1.ToString(CultureInfo.InvariantCulture),
        });
    }

    public PlatformClient Client(string? key) => new(Gateway.BaseUrl, key);

    public async Task<CreateAccountResponse> CreateAccountAsync(string role, decimal credits)
    {
        using var admin = Client(AdminKey);
        return await admin.CreateAccountAsync(new CreateAccountRequest(role, $"{role} {Guid.NewGuid():n}", credits));
    }

    private async Task<ServiceProcess> StartAsync(string service, Dictionary<string, string?>? env = null)
    {
        var process = await ServiceProcess.StartAsync(service, Environment, env);
        _services.Add(process);
        return process;
    }

    public Task DisposeAsync() => Teardown.StopAsync(_services, Environment, _dataRoot);
}
