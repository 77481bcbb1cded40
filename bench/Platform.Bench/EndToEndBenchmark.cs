using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// Jobs per second, CPU per job and submit-to-complete latency through the real network (gateway, rewards,
/// scheduler, storage and workers as processes on real RabbitMQ and Postgres) running tiny vector-add jobs,
/// beside the raw broker rate measured in the same run on the same broker.
/// </summary>
/// <remarks>
/// Built to measure the network, not its own client: the gateway's per-key rate limits are lifted, a closed loop
/// keeps a bounded number of jobs in flight (enough to keep every slot busy), completions are read by primary key
/// for the outstanding ids only, and the CPU, transactions and statements are counted over a window taken after
/// a warm-up, while the load is steady. Then half the measured rate, paced (open loop), gives the latency under
/// load, and jobs one after another on the idle network the latency of one job.
/// Settings (environment): PLATFORM_BENCH_IN_FLIGHT (default 1024), PLATFORM_BENCH_WARMUP_SECONDS (10),
/// PLATFORM_BENCH_WINDOW_SECONDS (30), PLATFORM_BENCH_HALF_SECONDS (15), PLATFORM_BENCH_WORKERS (4),
/// PLATFORM_BENCH_SLOTS (8).
/// </remarks>
public static class EndToEndBenchmark
{
    private const int BrokerMessages = 20_000;
    private const int Clients = 8;
    private const int Submitters = 32;
    private const int IdleJobs = 20;
    private const int TopStatements = 10;
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxFill = TimeSpan.FromSeconds(60);

    public static async Task RunAsync()
    {
        var inFlight = Setting("PLATFORM_BENCH_IN_FLIGHT", 1024);
        var warmup = TimeSpan.FromSeconds(Setting("PLATFORM_BENCH_WARMUP_SECONDS", 10));
        var window = TimeSpan.FromSeconds(Setting("PLATFORM_BENCH_WINDOW_SECONDS", 30));
        var halfTime = TimeSpan.FromSeconds(Setting("PLATFORM_BENCH_HALF_SECONDS", 15));
        var workers = Setting("PLATFORM_BENCH_WORKERS", 4);
        var slots = Setting("PLATFORM_BENCH_SLOTS", 8);
        var loadAtStart = NetworkMeter.LoadAverage();

        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench");
        // The broker's CPU per message beside its rate: how Erlang's scheduler settings (scripts/infra.sh) are judged.
        var beam = await NetworkMeter.BeamPidAsync(infrastructure);
        var beamBefore = beam is { } b0 ? ProcessCpu.OwnTicks(b0) : null;
        var brokerRate = await BenchNetwork.RawBrokerRateAsync(env.RabbitMqUri, BrokerMessages);
        var beamAfter = beam is { } b1 ? ProcessCpu.OwnTicks(b1) : null;
        NetworkMeter.CheckParser(); // after the broker run: by then this process has used enough CPU to tell a wrong field
        var brokerCpu = beamBefore is { } t0 && beamAfter is { } t1
            ? $"{ProcessCpu.Milliseconds(t1 - t0) * 1000 / BrokerMessages:N1} µs of RabbitMQ CPU per message"
            : "RabbitMQ CPU not measured";
        Console.WriteLine($"raw broker rate {brokerRate:N0} msg/s, {brokerCpu}; starting {workers} workers with {slots} slots each...");
        await using var network = await BenchNetwork.StartAsync(env, workers, slots, Clients, BenchNetwork.RaisedLimits);
        var meter = await NetworkMeter.CreateAsync(env, network);
        await using var tracker = new CompletionTracker(network.GatewayConnectionString);

        // 0. What the network costs doing nothing, to read the per-job figures against.
        var idleBefore = await meter.SnapshotAsync(tracker);
        await Task.Delay(IdleWindow);
        var idleAfter = await meter.SnapshotAsync(tracker);

        // 1. Saturated: a closed loop keeps inFlight jobs accepted and not yet terminal.
        Console.WriteLine($"saturating: {inFlight} jobs in flight, {Submitters} submitters over {Clients} API keys; warm-up {warmup.TotalSeconds:N0} s, then a {window.TotalSeconds:N0} s window...");
        using var stop = new CancellationTokenSource();
        var submitted = 0;
        var load = ClosedLoopAsync(network, tracker, inFlight, () => Interlocked.Increment(ref submitted), stop.Token);
        await Task.Delay(warmup); // phases of the benchmark are timed, not awaited conditions
        // The window starts at steady state: the bound reached, so as many jobs start as finish.
        var fill = Stopwatch.StartNew();
        while (tracker.Outstanding < inFlight * 9 / 10 && fill.Elapsed < MaxFill)
        {
            await tracker.Progressed;
        }

        if (tracker.Outstanding < inFlight * 9 / 10)
        {
            Console.WriteLine($"  warning: only {tracker.Outstanding} of {inFlight} jobs in flight after the warm-up: the client or the gateway's intake is the limit");
        }

        var before = await meter.SnapshotAsync(tracker);
        var loadInWindow = NetworkMeter.LoadAverage();
        await Task.Delay(window);
        var after = await meter.SnapshotAsync(tracker);
        await stop.CancelAsync();
        await load;
        var jobs = after.Completed - before.Completed;
        var throughput = jobs / Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds;
        await tracker.DrainAsync(DrainTimeout);

        // 2. Half the measured rate, paced (open loop): latency under load.
        var halfRate = Math.Max(throughput / 2, 1);
        var halfJobs = Math.Max(20, (int)(halfRate * halfTime.TotalSeconds));
        Console.WriteLine($"half load: {halfJobs} jobs paced at {halfRate:N1} jobs/s...");
        var halfBefore = await meter.SnapshotAsync(tracker);
        var halfIds = await PacedAsync(network, tracker, halfJobs, halfRate);
        await tracker.DrainAsync(DrainTimeout);
        var halfAfter = await meter.SnapshotAsync(tracker);
        var (halfP50, halfP99) = await network.LatencyAsync(halfIds);

        // 3. Job arrays: the same tiny jobs, many to a request (POST /v1/jobs:batch), from submit to the last completion.
        var arrayTasks = Setting("PLATFORM_BENCH_ARRAY_TASKS", 2_000);
        var arraySize = Math.Min(Setting("PLATFORM_BENCH_ARRAY_SIZE", 1_000), arrayTasks);
        var arrays = (arrayTasks + arraySize - 1) / arraySize;
        Console.WriteLine($"job arrays: {arrayTasks} tasks in {arrays} arrays of up to {arraySize}...");
        var arrayBefore = await meter.SnapshotAsync(tracker);
        var accepting = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, arrays), async (i, _) =>
        {
            foreach (var id in await SubmitArrayAsync(network, i, Math.Min(arraySize, arrayTasks - i * arraySize)))
                tracker.Add(id);
        });
        var acceptedIn = accepting.Elapsed;
        await tracker.DrainAsync(DrainTimeout);
        var arrayAfter = await meter.SnapshotAsync(tracker);
        var arrayRate = arrayTasks / Stopwatch.GetElapsedTime(arrayBefore.Timestamp, arrayAfter.Timestamp).TotalSeconds;

        // 4. Idle: one job at a time.
        Console.WriteLine($"idle: {IdleJobs} jobs one after another...");
        var (idleIds, idleClient) = await SequentialAsync(network, IdleJobs);
        var (idleP50, idleP99) = await network.LatencyAsync(idleIds);
        var (clientP50, clientP99) = Percentiles(idleClient);

        Console.WriteLine();
        Console.WriteLine($"end to end: vector-add of 4 floats, {workers} workers x {slots} slots, {Clients} API keys with the rate limits lifted, real RabbitMQ and Postgres");
        Console.WriteLine($"  load average at start {loadAtStart}, in the window {loadInWindow}, at the end {NetworkMeter.LoadAverage()}");
        Console.WriteLine($"  raw broker rate (persistent, confirms, 1 consumer)  {brokerRate,10:N0} msg/s   ({brokerCpu})");
        Console.WriteLine($"  jobs/s at saturation ({inFlight} in flight, closed loop)  {throughput,8:N1}      ratio to broker {throughput / brokerRate:F4} (target >= 0.07)");
        Console.WriteLine($"  latency at half load ({halfRate:N1} jobs/s paced, {halfJobs} jobs)  p50 {halfP50,7:N1} ms   p99 {halfP99,7:N1} ms (target p99 <= 250 ms)");
        Console.WriteLine($"  latency at idle ({IdleJobs} jobs one at a time)  p50 {idleP50,7:N1} ms   p99 {idleP99,7:N1} ms (target p50 <= 25 ms); as the client saw it p50 {clientP50:N1} ms, p99 {clientP99:N1} ms");
        Console.WriteLine($"  job arrays ({arrayTasks} tasks in arrays of {arraySize}, submit to last completion)  {arrayRate,8:N1} tasks/s (target >= 3,000); accepted by the gateway in {acceptedIn.TotalMilliseconds:N0} ms ({arrayTasks / acceptedIn.TotalSeconds:N0} tasks/s)");
        NetworkMeter.ReportIdle(idleBefore, idleAfter);
        Console.WriteLine($"  jobs submitted {submitted + halfJobs + arrayTasks + IdleJobs:N0}, completed {tracker.Completed + IdleJobs:N0}, other terminal {tracker.OtherTerminal}, not terminal {tracker.Outstanding}");
        Console.WriteLine();
        Console.WriteLine("saturated window:");
        meter.Report(before, after, TopStatements);
        Console.WriteLine();
        Console.WriteLine("half load (submit to last completion, including the drain):");
        meter.Report(halfBefore, halfAfter, topStatements: 0);
        Console.WriteLine();
        Console.WriteLine("job arrays (submit to last completion):");
        meter.Report(arrayBefore, arrayAfter, TopStatements);
    }

    /// <summary>
    /// Submits until <paramref name="stop"/> while fewer than <paramref name="inFlight"/> jobs are accepted and not
    /// terminal (a submission under way counts as in flight). A submission already sent finishes after stop, so
    /// every job the gateway accepted is tracked.
    /// </summary>
    private static Task ClosedLoopAsync(BenchNetwork network, CompletionTracker tracker, int inFlight, Func<int> next, CancellationToken stop)
    {
        var sending = 0;
        return Task.WhenAll(Enumerable.Range(0, Submitters).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var progressed = tracker.Progressed;
                if (tracker.Outstanding + Interlocked.Increment(ref sending) > inFlight)
                {
                    Interlocked.Decrement(ref sending);
                    try
                    {
                        await progressed.WaitAsync(stop);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }

                    continue;
                }

                try
                {
                    tracker.Add(await SubmitAsync(network, next()));
                }
                finally
                {
                    Interlocked.Decrement(ref sending);
                }
            }
        })));
    }

    /// <summary>Submits <paramref name="count"/> jobs at <paramref name="perSecond"/>, each at its due time whatever the earlier ones do (open loop).</summary>
    private static async Task<List<string>> PacedAsync(BenchNetwork network, CompletionTracker tracker, int count, double perSecond)
    {
        var ids = new List<string>(count);
        var start = Stopwatch.GetTimestamp();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 2 * Submitters }, async (i, ct) =>
        {
            var due = TimeSpan.FromSeconds(i / perSecond) - Stopwatch.GetElapsedTime(start);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, ct); // pacing the load generator, not waiting for a result
            }

            var id = await SubmitAsync(network, i);
            tracker.Add(id);
            lock (ids)
            {
                ids.Add(id);
            }
        });
        var achieved = count / Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (achieved < perSecond * 0.95)
        {
            Console.WriteLine($"  warning: the client submitted only {achieved:N1} jobs/s of the {perSecond:N1} asked");
        }

        return ids;
    }

    /// <summary>Jobs one after another, each submitted when the previous one is terminal; returns the client's view of each latency too.</summary>
    private static async Task<(List<string> Ids, List<double> ClientMs)> SequentialAsync(BenchNetwork network, int count)
    {
        var ids = new List<string>();
        var clientMs = new List<double>();
        await using var db = new NpgsqlConnection(network.GatewayConnectionString);
        await db.OpenAsync();
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var id = await SubmitAsync(network, i);
            // Polled every 2 ms (not Eventually's 50 ms), so the client's figure is not rounded up to the poll.
            while (await db.ExecuteScalarAsync<int>(CompletionTracker.Marker + " select status_rank from jobs where id = @id", new { id }) != 10)
            {
                if (Stopwatch.GetElapsedTime(start) > TimeSpan.FromMinutes(1))
                {
                    throw new TimeoutException($"job {id} was not terminal after a minute on an idle network");
                }

                await Task.Delay(2); // polling period
            }

            clientMs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            ids.Add(id);
        }

        return (ids, clientMs);
    }

    private static async Task<string> SubmitAsync(BenchNetwork network, int i)
    {
        using var response = await network.Clients[i % network.Clients.Count].PostAsJsonAsync("/v1/jobs", network.VectorAddJob());
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"POST /v1/jobs answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        var job = await response.Content.ReadFromJsonAsync<JsonElement>();
        return job.GetProperty("id").GetString()!;
    }

    private static async Task<List<string>> SubmitArrayAsync(BenchNetwork network, int i, int size)
    {
        var job = network.VectorAddJob();
        using var response = await network.Clients[i % network.Clients.Count].PostAsJsonAsync("/v1/jobs:batch", new { jobs = Enumerable.Repeat(job, size) });
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"POST /v1/jobs:batch answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        var batch = await response.Content.ReadFromJsonAsync<JsonElement>();
        return [.. batch.GetProperty("jobIds").EnumerateArray().Select(j => j.GetString()!)];
    }

    private static (double P50, double P99) Percentiles(List<double> values)
    {
        var sorted = values.Order().ToList();
        return (sorted[(int)(sorted.Count * 0.50)], sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * 0.99))]);
    }

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;
}
