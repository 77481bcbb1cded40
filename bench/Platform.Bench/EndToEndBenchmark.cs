using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Platform.Bench;

/// <summary>
/// Jobs per second and submit-to-complete latency through the real network (gateway, rewards, scheduler,
/// storage and 4 workers on real RabbitMQ and Postgres) running tiny vector-add jobs, beside the raw broker
/// rate measured in the same run on the same broker: persistent 1 KiB messages, publisher confirms, one
/// consumer.
/// </summary>
public static class EndToEndBenchmark
{
    private const int BrokerMessages = 20_000;
    private const int Warmup = 200;
    private const int Jobs = 2_000;
    private const int Submitters = 32;
    private const int Clients = 8;

    private sealed record Pinned(string Cid);

    private sealed record CreatedAccount(string AccountId, string Key);

    public static async Task RunAsync()
    {
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench");
        var brokerRate = await RawBrokerRateAsync(env.RabbitMqUri);

        var adminKey = "pk_admin_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var data = Directory.CreateTempSubdirectory("platform-bench-");
        var storage = await ServiceProcess.StartAsync("storage", env, new Dictionary<string, string?> { ["Storage__RootPath"] = Path.Combine(data.FullName, "storage") });
        var rewards = await ServiceProcess.StartAsync("rewards", env);
        var scheduler = await ServiceProcess.StartAsync("scheduler", env);
        var gateway = await ServiceProcess.StartAsync("gateway", env, new Dictionary<string, string?>
        {
            ["Platform__AdminKey"] = adminKey,
            ["Platform__KeyHashSecret"] = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
            ["Upstreams__Storage"] = storage.BaseUrl.ToString(),
            ["Upstreams__Rewards"] = rewards.BaseUrl.ToString(),
            ["Upstreams__Scheduler"] = scheduler.BaseUrl.ToString(),
        });
        using var admin = Client(gateway.BaseUrl, adminKey);
        var operatorAccount = await CreateAsync(admin, "operator", 10);
        using (var operatorHttp = Client(gateway.BaseUrl, operatorAccount.Key))
            (await operatorHttp.PostAsJsonAsync(new Uri("/v1/account/stake", UriKind.Relative), new { amount = 10 })).EnsureSuccessStatusCode();
        for (var i = 0; i < 4; i++)
        {
            await ServiceProcess.StartAsync("worker", env, new Dictionary<string, string?>
            {
                ["ConnectionStrings__Postgres"] = null,
                ["Worker__OperatorKey"] = operatorAccount.Key,
                ["Worker__GatewayUrl"] = gateway.BaseUrl.ToString(),
                ["Worker__DataDirectory"] = Path.Combine(data.FullName, $"worker-{i}"),
                ["Worker__Slots"] = "4",
            });
        }
        // Several clients, as on a real network: each client's jobs are escrowed one after another (its balance
        // row), so one client alone would measure that row rather than the network.
        var clients = new List<HttpClient>();
        for (var i = 0; i < Clients; i++)
            clients.Add(Client(gateway.BaseUrl, (await CreateAsync(admin, "client", 1_000_000)).Key));
        var http = clients[0];
        using var pin = new ByteArrayContent(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4)));
        var vector = (await (await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), pin)).Content.ReadFromJsonAsync<Pinned>())!.Cid;
        await using var gatewayDb = new NpgsqlConnection(env.PostgresConnectionStringFor("gateway"));

        Console.WriteLine($"warming up with {Warmup} jobs...");
        await SubmitAsync(clients, vector, Warmup, Submitters, null);
        await WaitCompletedAsync(gatewayDb, Warmup);

        var stopwatch = Stopwatch.StartNew();
        var ids = await SubmitAsync(clients, vector, Jobs, Submitters, null);
        await WaitCompletedAsync(gatewayDb, Warmup + Jobs);
        stopwatch.Stop();
        var throughput = Jobs / stopwatch.Elapsed.TotalSeconds;
        var (p50, p99) = await LatencyAsync(gatewayDb, ids);

        var halfRate = throughput / 2;
        var halfJobs = (int)Math.Clamp(halfRate * 20, 200, 2_000);
        var halfIds = await SubmitAsync(clients, vector, halfJobs, Submitters, halfRate);
        await WaitCompletedAsync(gatewayDb, Warmup + Jobs + halfJobs);
        var (halfP50, halfP99) = await LatencyAsync(gatewayDb, halfIds);

        Console.WriteLine();
        Console.WriteLine($"end to end ({Clients} clients, 4 workers with 4 slots each, vector-add of 4 floats, real RabbitMQ and Postgres)");
        Console.WriteLine($"  raw broker rate (persistent, confirms, 1 consumer)  {brokerRate,10:N0} msg/s");
        Console.WriteLine($"  jobs/s at full load ({Jobs} jobs)                 {throughput,10:N1}      ratio to broker {throughput / brokerRate:F3} (target >= 0.100)");
        Console.WriteLine($"  latency at full load      p50 {p50,7:N1} ms   p99 {p99,7:N1} ms");
        Console.WriteLine($"  latency at half load ({halfRate:N0} jobs/s, {halfJobs} jobs)  p50 {halfP50,7:N1} ms   p99 {halfP99,7:N1} ms (target p99 < 250 ms)");
        data.Delete(recursive: true);
        foreach (var c in clients)
            c.Dispose();
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

    /// <summary>Submits <paramref name="count"/> jobs, as fast as possible or paced at <paramref name="perSecond"/> (open loop).</summary>
    private static async Task<List<string>> SubmitAsync(List<HttpClient> clients, string vector, int count, int concurrency, double? perSecond)
    {
        var ids = new List<string>(count);
        var start = Stopwatch.GetTimestamp();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, ct) =>
        {
            if (perSecond is { } rate)
            {
                var due = TimeSpan.FromSeconds(i / rate) - Stopwatch.GetElapsedTime(start);
                if (due > TimeSpan.Zero)
                    await Task.Delay(due, ct); // pacing the load generator, not waiting for a result
            }
            using var response = await clients[i % clients.Count].PostAsJsonAsync("/v1/jobs", new { kernel = "vector-add", inputs = new { a = vector, b = vector } }, ct);
            response.EnsureSuccessStatusCode();
            var job = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
            lock (ids)
                ids.Add(job.GetProperty("id").GetString()!);
        });
        return ids;
    }

    private static Task WaitCompletedAsync(NpgsqlConnection gatewayDb, int total) =>
        Eventually.UntilAsync(() => gatewayDb.ExecuteScalarAsync<int>("select count(*) from jobs where status = 'completed'"), n => n >= total,
            TimeSpan.FromMinutes(10), $"{total} jobs completed");

    /// <summary>Submit-to-complete from the gateway's own record: created when accepted, completed when the scheduler accepted the result.</summary>
    private static async Task<(double P50, double P99)> LatencyAsync(NpgsqlConnection gatewayDb, List<string> ids)
    {
        var ms = (await gatewayDb.QueryAsync<double>(
            "select extract(epoch from (completed_at - created_at)) * 1000 from jobs where id = any(@ids)", new { ids = ids.ToArray() })).Order().ToList();
        return (ms[(int)(ms.Count * 0.50)], ms[Math.Min(ms.Count - 1, (int)(ms.Count * 0.99))]);
    }

    private static async Task<double> RawBrokerRateAsync(string amqpUri)
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
            if (Interlocked.Increment(ref received) == BrokerMessages)
                allReceived.TrySetResult();
        };
        await consumerChannel.BasicConsumeAsync(queue, autoAck: false, consumer);

        var body = new byte[1024];
        var properties = new BasicProperties { Persistent = true };
        var stopwatch = Stopwatch.StartNew();
        var inFlight = new List<Task>(256);
        for (var i = 0; i < BrokerMessages; i++)
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
        return BrokerMessages / stopwatch.Elapsed.TotalSeconds;
    }
}
