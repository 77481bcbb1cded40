using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// A sustained run: 10,000 vector-add jobs through the real network at the highest rate it keeps up with,
/// then a check that nothing was lost (every job terminal, the ledger balanced) and each service's peak
/// memory, beside the raw broker rate measured in the same run on the same broker.
/// </summary>
/// <remarks>
/// The load is closed-loop: 32 submitters, each pausing while more than <see cref="MaxBacklog"/> accepted
/// jobs are not yet terminal, and backing off on 429 (honouring Retry-After). Submissions carry an
/// Idempotency-Key, so one retried after a 5xx or a lost response cannot become two jobs. The gateway's
/// per-key rate limits are raised for the run (Limits__*PerSecond and Limits__*Burst = 100,000) so the
/// figure measures the network, not the limiter that protects it.
/// </remarks>
public static class LoadBenchmark
{
    private const int BrokerMessages = 20_000;
    private const int Warmup = 200;
    private const int Jobs = 10_000;
    private const int Submitters = 32;
    private const int Clients = 8;
    private const int Workers = 4;
    private const int Slots = 4;

    /// <summary>Accepted but not yet terminal jobs the submitters allow: about ten seconds of work at ~40 jobs/s.</summary>
    private const int MaxBacklog = 400;

    public static async Task RunAsync()
    {
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench-load");
        var brokerRate = await BenchNetwork.RawBrokerRateAsync(env.RabbitMqUri, BrokerMessages);
        await using var network = await BenchNetwork.StartAsync(env, Workers, Slots, Clients, BenchNetwork.RaisedLimits);

        Console.WriteLine($"warming up with {Warmup} jobs...");
        var warmup = await SubmitAsync(network, Warmup, "warmup");
        await network.WaitCompletedAsync(Warmup);

        Console.WriteLine($"submitting {Jobs:N0} jobs ({Submitters} submitters, backlog at most {MaxBacklog})...");
        var stopwatch = Stopwatch.StartNew();
        var run = await SubmitAsync(network, Jobs, "load");
        var submitted = stopwatch.Elapsed;
        var baseTerminal = Warmup;
        await Eventually.UntilAsync(network.TerminalCountAsync, n => n >= baseTerminal + Jobs, TimeSpan.FromMinutes(10), $"{Jobs} jobs terminal");
        stopwatch.Stop();
        var throughput = Jobs / stopwatch.Elapsed.TotalSeconds;

        // Nothing lost: every accepted job has exactly one row, in a terminal status.
        var statuses = (await network.GatewayDb.QueryAsync<(string Status, int Count)>(
            "select status, count(*)::int from jobs where id = any(@ids) group by status order by status", new { ids = run.Ids.ToArray() })).ToList();
        var rows = statuses.Sum(s => s.Count);
        var terminal = await network.GatewayDb.ExecuteScalarAsync<int>(
            "select count(*) from jobs where id = any(@ids) and status_rank = 10", new { ids = run.Ids.ToArray() });
        var (p50, p99) = await network.LatencyAsync(run.Ids.ToList());

        // Credits conserved: the postings of every ledger transaction, and so of all of them, sum to zero.
        await using var rewardsDb = new NpgsqlConnection(env.PostgresConnectionStringFor("rewards"));
        var ledgerSum = await rewardsDb.ExecuteScalarAsync<decimal>("select coalesce(sum(amount), 0) from postings");
        var unbalanced = await rewardsDb.ExecuteScalarAsync<long>(
            "select count(*) from (select transaction_id from postings group by transaction_id having sum(amount) <> 0) t");
        var transactions = await rewardsDb.ExecuteScalarAsync<long>("select count(*) from transactions");

        Console.WriteLine();
        Console.WriteLine($"load ({Jobs:N0} jobs after {warmup.Ids.Count} warm-up, {Clients} clients, {Workers} workers with {Slots} slots each, vector-add of 4 floats, real RabbitMQ and Postgres)");
        Console.WriteLine($"  raw broker rate (persistent, confirms, 1 consumer)  {brokerRate,10:N0} msg/s");
        Console.WriteLine($"  sustained jobs/s (first submit to last terminal)  {throughput,10:N1}      ratio to broker {throughput / brokerRate:F4}");
        Console.WriteLine($"  submitted in {submitted.TotalSeconds:N1} s, all terminal after {stopwatch.Elapsed.TotalSeconds:N1} s; 429s {run.Throttled}, retried errors {run.Errors}, backlog pauses {run.Paused}");
        Console.WriteLine($"  latency (submit to complete)  p50 {p50,9:N1} ms   p99 {p99,9:N1} ms");
        Console.WriteLine($"  accepted {run.Ids.Count:N0}, with a row {rows:N0}, terminal {terminal:N0}, lost {run.Ids.Count - terminal:N0}: "
            + string.Join(", ", statuses.Select(s => $"{s.Status} {s.Count:N0}")));
        Console.WriteLine($"  ledger: {transactions:N0} transactions, sum of all postings {ledgerSum.ToString("0.######", CultureInfo.InvariantCulture)}, unbalanced transactions {unbalanced}");
        Console.WriteLine("  peak memory (VmHWM) per service process:");
        foreach (var service in network.Services)
            Console.WriteLine($"    {service.Service,-10} pid {service.ProcessId,-8} {PeakMemory(service.ProcessId)}");
    }

    private sealed record Submitted(IReadOnlyCollection<string> Ids, int Throttled, int Errors, int Paused);

    /// <summary>
    /// Submits <paramref name="count"/> jobs as fast as the network finishes them: a submitter waits while the
    /// backlog (accepted, not yet terminal) is above <see cref="MaxBacklog"/>, and after a 429 for Retry-After.
    /// </summary>
    private static async Task<Submitted> SubmitAsync(BenchNetwork network, int count, string tag)
    {
        var ids = new ConcurrentBag<string>();
        int throttled = 0, errors = 0, paused = 0;
        var terminalAtStart = await network.TerminalCountAsync();
        var terminal = terminalAtStart;
        using var stop = new CancellationTokenSource();
        // One poller for the backlog, not one query per submission.
        await using var poll = new NpgsqlConnection(network.GatewayConnectionString);
        var poller = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Volatile.Write(ref terminal, await poll.ExecuteScalarAsync<int>("select count(*) from jobs where status_rank = 10"));
                try
                {
                    await Task.Delay(200, stop.Token); // polling period of the backlog reading
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        });

        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = Submitters }, async (i, ct) =>
        {
            while (ids.Count - (Volatile.Read(ref terminal) - terminalAtStart) > MaxBacklog)
            {
                Interlocked.Increment(ref paused);
                await Task.Delay(50, ct); // closed loop: wait for the network to catch up
            }
            var key = $"bench-{tag}-{i}-{Guid.NewGuid():N}";
            for (var attempt = 0; ; attempt++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = JsonContent.Create(network.VectorAddJob()) };
                request.Headers.Add("Idempotency-Key", key);
                HttpResponseMessage response;
                try
                {
                    response = await network.Clients[i % network.Clients.Count].SendAsync(request, ct);
                }
                catch (HttpRequestException) when (attempt < 10)
                {
                    Interlocked.Increment(ref errors);
                    await Task.Delay(100 << Math.Min(attempt, 5), ct); // back off before retrying the same key
                    continue;
                }
                using (response)
                {
                    if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        Interlocked.Increment(ref throttled);
                        await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1), ct); // as the gateway asks
                        continue;
                    }
                    if ((int)response.StatusCode >= 500 && attempt < 10)
                    {
                        Interlocked.Increment(ref errors);
                        await Task.Delay(100 << Math.Min(attempt, 5), ct); // back off before retrying the same key
                        continue;
                    }
                    response.EnsureSuccessStatusCode();
                    var job = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
                    ids.Add(job.GetProperty("id").GetString()!);
                    return;
                }
            }
        });
        await stop.CancelAsync();
        await poller;
        return new Submitted(ids, throttled, errors, paused);
    }

    /// <summary>The process's peak resident set (VmHWM) from /proc, or why it could not be read.</summary>
    private static string PeakMemory(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            if (line is null)
                return "no VmHWM";
            var kib = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            return $"{kib / 1024.0,8:N1} MiB";
        }
        catch (IOException e)
        {
            return $"unreadable ({e.Message})";
        }
    }
}
