using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Platform.Bench;

/// <summary>
/// A private network of real processes for the benchmarks that run jobs end to end: storage, rewards,
/// scheduler, gateway and workers (each under one staked operator) on the environment's RabbitMQ vhost and
/// Postgres databases, client accounts with credits, and a pinned 4-float vector for vector-add jobs.
/// </summary>
public sealed class BenchNetwork : IAsyncDisposable
{
    private sealed record Pinned(string Cid);

    private sealed record CreatedAccount(string AccountId, string Key);

    private sealed record CreatedNodeKey(string Id, string Key);

    private readonly DirectoryInfo data;

    private BenchNetwork(DirectoryInfo data, List<ServiceProcess> services, List<HttpClient> clients, string vector, NpgsqlConnection gatewayDb)
    {
        this.data = data;
        Services = services;
        Clients = clients;
        Vector = vector;
        GatewayDb = gatewayDb;
        GatewayConnectionString = gatewayDb.ConnectionString;
    }

    /// <summary>Every service process started, in start order (storage, rewards, scheduler, gateway, workers).</summary>
    public IReadOnlyList<ServiceProcess> Services { get; }

    /// <summary>One HTTP client per client account, each with its own API key.</summary>
    public IReadOnlyList<HttpClient> Clients { get; }

    /// <summary>CID of the pinned vector both inputs of the vector-add jobs point at.</summary>
    public string Vector { get; }

    /// <summary>The gateway's database: its jobs table is the read model of every job's status.</summary>
    public NpgsqlConnection GatewayDb { get; }

    /// <summary>For a second connection to the gateway's database (GatewayDb's own string loses its password once open).</summary>
    public string GatewayConnectionString { get; }

    /// <summary>
    /// Gateway settings that lift the per-key rate limits (token buckets of 100,000/s), so a benchmark measures
    /// the network rather than the limiter that protects it.
    /// </summary>
    public static IDictionary<string, string?> RaisedLimits => new Dictionary<string, string?>
    {
        ["Limits__ClientPerSecond"] = "100000",
        ["Limits__ClientBurst"] = "100000",
        ["Limits__OperatorPerSecond"] = "100000",
        ["Limits__OperatorBurst"] = "100000",
    };

    /// <summary>
    /// Starts the network. <paramref name="gatewayEnv"/> adds settings to the gateway's environment (the load
    /// benchmark raises its per-client rate limit).
    /// </summary>
    public static async Task<BenchNetwork> StartAsync(
        TestEnvironment env, int workers, int slots, int clients, IDictionary<string, string?>? gatewayEnv = null)
    {
        var adminKey = "pk_admin_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var data = Directory.CreateTempSubdirectory("platform-bench-");
        var services = new List<ServiceProcess>();
        var storage = await ServiceProcess.StartAsync("storage", env, new Dictionary<string, string?> { ["Storage__RootPath"] = Path.Combine(data.FullName, "storage") });
        services.Add(storage);
        var rewards = await ServiceProcess.StartAsync("rewards", env);
        services.Add(rewards);
        var scheduler = await ServiceProcess.StartAsync("scheduler", env);
        services.Add(scheduler);
        var gatewaySettings = new Dictionary<string, string?>
        {
            ["Platform__AdminKey"] = adminKey,
            ["Platform__KeyHashSecret"] = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
            ["Upstreams__Storage"] = storage.BaseUrl.ToString(),
            ["Upstreams__Rewards"] = rewards.BaseUrl.ToString(),
            ["Upstreams__Scheduler"] = scheduler.BaseUrl.ToString(),
        };
        foreach (var (key, value) in gatewayEnv ?? new Dictionary<string, string?>())
            gatewaySettings[key] = value;
        var gateway = await ServiceProcess.StartAsync("gateway", env, gatewaySettings);
        services.Add(gateway);

        using var admin = Client(gateway.BaseUrl, adminKey);
        var operatorAccount = await CreateAsync(admin, "operator", 10);
        using (var operatorHttp = Client(gateway.BaseUrl, operatorAccount.Key))
            (await operatorHttp.PostAsJsonAsync(new Uri("/v1/account/stake", UriKind.Relative), new { amount = 10 })).EnsureSuccessStatusCode();
        for (var i = 0; i < workers; i++)
        {
            // Each worker gets a node key of its own (a node key enrolls one worker), never the operator's key.
            string nodeKey;
            using (var operatorHttp = Client(gateway.BaseUrl, operatorAccount.Key))
            using (var made = await operatorHttp.PostAsJsonAsync(new Uri("/v1/account/node-keys", UriKind.Relative), new { workers = 1 }))
                nodeKey = (await made.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<CreatedNodeKey>())!.Key;
            services.Add(await ServiceProcess.StartAsync("worker", env, new Dictionary<string, string?>
            {
                ["ConnectionStrings__Postgres"] = null,
                ["Worker__NodeKey"] = nodeKey,
                ["Worker__GatewayUrl"] = gateway.BaseUrl.ToString(),
                ["Worker__DataDirectory"] = Path.Combine(data.FullName, $"worker-{i}"),
                ["Worker__Slots"] = slots.ToString(CultureInfo.InvariantCulture),
            }));
        }
        // Several clients, as on a real network: each client's jobs are escrowed one after another (its balance
        // row), so one client alone would measure that row rather than the network.
        var http = new List<HttpClient>();
        for (var i = 0; i < clients; i++)
            http.Add(Client(gateway.BaseUrl, (await CreateAsync(admin, "client", 1_000_000)).Key));
        using var pin = new ByteArrayContent(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4)));
        var vector = (await (await http[0].PostAsync(new Uri("/v1/blobs", UriKind.Relative), pin)).Content.ReadFromJsonAsync<Pinned>())!.Cid;
        var gatewayDb = new NpgsqlConnection(env.PostgresConnectionStringFor("gateway"));
        return new BenchNetwork(data, services, http, vector, gatewayDb);
    }

    /// <summary>Jobs whose gateway status is terminal (completed, failed, cancelled or rejected).</summary>
    public Task<int> TerminalCountAsync() =>
        GatewayDb.ExecuteScalarAsync<int>("select count(*) from jobs where status_rank = 10");

    public Task WaitCompletedAsync(int total) =>
        Eventually.UntilAsync(() => GatewayDb.ExecuteScalarAsync<int>("select count(*) from jobs where status = 'completed'"), n => n >= total,
            TimeSpan.FromMinutes(10), $"{total} jobs completed");

    /// <summary>Submit-to-complete from the gateway's own record: created when accepted, completed when the scheduler accepted the result.</summary>
    public async Task<(double P50, double P99)> LatencyAsync(List<string> ids)
    {
        var ms = (await GatewayDb.QueryAsync<double>(
            "select extract(epoch from (completed_at - created_at)) * 1000 from jobs where id = any(@ids)", new { ids = ids.ToArray() })).Order().ToList();
        return (ms[(int)(ms.Count * 0.50)], ms[Math.Min(ms.Count - 1, (int)(ms.Count * 0.99))]);
    }

    /// <summary>The job body every benchmark submits: vector-add of the pinned vector with itself.</summary>
    public object VectorAddJob() => new { kernel = "vector-add", inputs = new { a = Vector, b = Vector } };

    public async ValueTask DisposeAsync()
    {
        await GatewayDb.DisposeAsync();
        foreach (var c in Clients)
            c.Dispose();
        data.Delete(recursive: true);
    }

    private static HttpClient Client(Uri baseUrl, string key)
    {
        var http = new HttpClient { BaseAddress = baseUrl };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    private static async Task<CreatedAccount> CreateAsync(HttpClient admin, string role, decimal credits)
    {
        using var response = await admin.PostAsJsonAsync("/v1/admin/accounts", new { role, name = $"bench {role}", credits });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<CreatedAccount>())!;
    }

    /// <summary>
    /// The broker's own rate on the same vhost: <paramref name="messages"/> persistent 1 KiB messages with
    /// publisher confirms (256 in flight) to one durable queue, one consumer with prefetch 256 and acks.
    /// </summary>
    public static async Task<double> RawBrokerRateAsync(string amqpUri, int messages)
    {
        var factory = new ConnectionFactory { Uri = new Uri(amqpUri) };
        await using var connection = await factory.CreateConnectionAsync();
        // No client-side rate limiter (its throttling would measure the client); the loop below keeps 256 in flight.
        await using var publisher = await connection.CreateChannelAsync(new CreateChannelOptions(
            publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null));
        await using var consumerChannel = await connection.CreateChannelAsync();
        var queue = (await publisher.QueueDeclareAsync("bench-raw-broker", durable: true, exclusive: false, autoDelete: false)).QueueName;
        await publisher.QueuePurgeAsync(queue);
        await consumerChannel.BasicQosAsync(0, 256, false);

        var received = 0;
        var allReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new AsyncEventingBasicConsumer(consumerChannel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            await consumerChannel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            if (Interlocked.Increment(ref received) == messages)
                allReceived.TrySetResult();
        };
        await consumerChannel.BasicConsumeAsync(queue, autoAck: false, consumer);

        var body = new byte[1024];
        var properties = new BasicProperties { Persistent = true };
        var stopwatch = Stopwatch.StartNew();
        var inFlight = new List<Task>(256);
        for (var i = 0; i < messages; i++)
        {
            inFlight.Add(publisher.BasicPublishAsync("", queue, mandatory: false, properties, body).AsTask());
            if (inFlight.Count == 256)
            {
                await Task.WhenAll(inFlight);
                inFlight.Clear();
            }
        }
        await Task.WhenAll(inFlight);
        await allReceived.Task.WaitAsync(TimeSpan.FromMinutes(5));
        stopwatch.Stop();
        await publisher.QueueDeleteAsync(queue);
        return messages / stopwatch.Elapsed.TotalSeconds;
    }
}
