using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

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

    public static async Task RunAsync()
    {
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench");
        var brokerRate = await BenchNetwork.RawBrokerRateAsync(env.RabbitMqUri, BrokerMessages);
        await using var network = await BenchNetwork.StartAsync(env, workers: 4, slots: 4, clients: Clients);

        Console.WriteLine($"warming up with {Warmup} jobs...");
        await SubmitAsync(network, Warmup, Submitters, null);
        await network.WaitCompletedAsync(Warmup);

        var stopwatch = Stopwatch.StartNew();
        var ids = await SubmitAsync(network, Jobs, Submitters, null);
        await network.WaitCompletedAsync(Warmup + Jobs);
        stopwatch.Stop();
        var throughput = Jobs / stopwatch.Elapsed.TotalSeconds;
        var (p50, p99) = await network.LatencyAsync(ids);

        var halfRate = throughput / 2;
        var halfJobs = (int)Math.Clamp(halfRate * 20, 200, 2_000);
        var halfIds = await SubmitAsync(network, halfJobs, Submitters, halfRate);
        await network.WaitCompletedAsync(Warmup + Jobs + halfJobs);
        var (halfP50, halfP99) = await network.LatencyAsync(halfIds);

        Console.WriteLine();
        Console.WriteLine($"end to end ({Clients} clients, 4 workers with 4 slots each, vector-add of 4 floats, real RabbitMQ and Postgres)");
        Console.WriteLine($"  raw broker rate (persistent, confirms, 1 consumer)  {brokerRate,10:N0} msg/s");
        Console.WriteLine($"  jobs/s at full load ({Jobs} jobs)                 {throughput,10:N1}      ratio to broker {throughput / brokerRate:F3} (target >= 0.100)");
        Console.WriteLine($"  latency at full load      p50 {p50,7:N1} ms   p99 {p99,7:N1} ms");
        Console.WriteLine($"  latency at half load ({halfRate:N0} jobs/s, {halfJobs} jobs)  p50 {halfP50,7:N1} ms   p99 {halfP99,7:N1} ms (target p99 < 250 ms)");
    }

    /// <summary>Submits <paramref name="count"/> jobs, as fast as possible or paced at <paramref name="perSecond"/> (open loop).</summary>
    private static async Task<List<string>> SubmitAsync(BenchNetwork network, int count, int concurrency, double? perSecond)
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
            using var response = await network.Clients[i % network.Clients.Count].PostAsJsonAsync("/v1/jobs", network.VectorAddJob(), ct);
            response.EnsureSuccessStatusCode();
            var job = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
            lock (ids)
                ids.Add(job.GetProperty("id").GetString()!);
        });
        return ids;
    }
}
