using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Dapper;
using Npgsql;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.EndToEnd.Tests.Chaos;

/// <summary>Which faults a chaos run injects.</summary>
public enum ChaosFaults
{
    /// <summary>Workers killed; the one RabbitMQ and Postgres restarted and stopped under load; every service restarted; messages redelivered.</summary>
    SingleServers,

    /// <summary>On a <see cref="ClusterNetwork"/>: a broker node killed and restarted, then the Postgres primary killed and its standby promoted.</summary>
    ClusterFailover,

    /// <summary>On a <see cref="PartitionNetwork"/>: a broker node cut off from the others and half the services, then healed.</summary>
    Partition,
}

/// <summary>
/// What a chaos run found, checked against the databases once every job had ended and no message was in flight.
/// <see cref="MoneyProblems"/> names each job whose money is not exactly what its status says (<see cref="JobMoney"/>).
/// </summary>
public sealed record ChaosReport(
    int Submitted, int Completed, int Failed, int Cancelled, int Rejected, int Lost, int StatusMismatches,
    int DuplicatePayments, int DuplicateMints, int PaidWithoutAcceptance, IReadOnlyList<string> MoneyProblems, decimal EscrowHeld,
    IReadOnlyList<string> BalancesOffPostings, int UnbalancedTransactions, IReadOnlyList<string> DeadLetters,
    int OutputsChecked, int OutputsVerified, IReadOnlyList<string> Faults, TimeSpan Duration, IReadOnlyList<OutageLoad> Outages)
{
    public string Table()
    {
        var rows = new (string Name, string Value)[]
        {
            ("jobs submitted", Submitted.ToString(CultureInfo.InvariantCulture)),
            ("completed", Completed.ToString(CultureInfo.InvariantCulture)),
            ("failed", Failed.ToString(CultureInfo.InvariantCulture)),
            ("cancelled / rejected", $"{Cancelled} / {Rejected}"),
            ("lost (no terminal status)", Lost.ToString(CultureInfo.InvariantCulture)),
            ("gateway and scheduler disagree", StatusMismatches.ToString(CultureInfo.InvariantCulture)),
            ("duplicate payments", DuplicatePayments.ToString(CultureInfo.InvariantCulture)),
            ("duplicate mints", DuplicateMints.ToString(CultureInfo.InvariantCulture)),
            ("paid without an accepted attempt", PaidWithoutAcceptance.ToString(CultureInfo.InvariantCulture)),
            ("jobs whose money is not exact", MoneyProblems.Count.ToString(CultureInfo.InvariantCulture)),
            ("escrow still held", EscrowHeld.ToString(CultureInfo.InvariantCulture)),
            ("balances off their postings", BalancesOffPostings.Count.ToString(CultureInfo.InvariantCulture)),
            ("unbalanced transactions", UnbalancedTransactions.ToString(CultureInfo.InvariantCulture)),
            ("dead-lettered messages", DeadLetters.Count == 0 ? "0" : string.Join(", ", DeadLetters)),
            ("outputs read back verified", $"{OutputsVerified} of {OutputsChecked}"),
            ("duration", $"{Duration.TotalSeconds:F0} s"),
        };
        var text = new StringBuilder();
        foreach (var (name, value) in rows)
            text.Append(CultureInfo.InvariantCulture, $"  {name,-34} {value}\n");
        // Before the faults line, which ends the table ./platform chaos prints.
        foreach (var outage in Outages)
            text.Append("  ").Append(outage.Describe()).Append('\n');
        text.Append("  faults: ").Append(string.Join("; ", Faults)).Append('\n');
        foreach (var problem in MoneyProblems.Concat(BalancesOffPostings))
            text.Append("  ").Append(problem).Append('\n');
        return text.ToString();
    }
}

/// <summary>
/// What a client saw while RabbitMQ or Postgres was stopped: submissions accepted (202) and refused for the outage
/// (503 with Retry-After and a problem), job views read (200) or refused the same way, the dashboard served, and
/// anything else (a 500, no answer, a 503 without Retry-After), which must not happen.
/// </summary>
public sealed class OutageLoad(string server, TimeSpan length)
{
    public string Server { get; } = server;
    public int Accepted { get; set; }
    /// <summary>The submission refused last, sent again with its key once the server was back, and accepted (0 or 1).</summary>
    public int AcceptedAfter { get; set; }
    public int WritesRefused { get; set; }
    public int ReadsServed { get; set; }
    public int ReadsRefused { get; set; }
    public int DashboardServed { get; set; }
    /// <summary>Jobs of the run that completed while the server was down (null: not countable, the database was the one down).</summary>
    public int? CompletedDuring { get; set; }
    /// <summary>When the first job completed after the server stopped, if the outage waited for one.</summary>
    public TimeSpan? FirstCompletedAfter { get; set; }
    /// <summary>How long the server was down under load (longer than planned when the outage waited for a completion).</summary>
    public TimeSpan Length { get; set; } = length;
    public List<string> Unexpected { get; } = [];

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Server} stopped {Length.TotalSeconds:F0} s: {(FirstCompletedAfter is { } first ? $"first job completed after {first.TotalSeconds:F1} s; " : "")}submits {Accepted} accepted, {WritesRefused} refused 503 with Retry-After ({AcceptedAfter} accepted with the same key after); job views {ReadsServed} read, {ReadsRefused} refused 503; dashboard served {DashboardServed} times; {(CompletedDuring is { } done ? $"{done} jobs completed meanwhile; " : "")}unexpected {Unexpected.Count}{(Unexpected.Count > 0 ? ": " + string.Join(" | ", Unexpected.Take(5)) : "")}");
}

/// <summary>
/// Submits jobs to a whole network of real processes while it kills workers, restarts RabbitMQ and Postgres, stops
/// each of them for a while (<c>outage</c>) under load,
/// crashes and restarts every service in turn and makes the services publish already-sent messages again
/// (their outbox rows marked unsent: the exact messages, redelivered). Then it waits for every job to end and for
/// nothing to be in flight (<see cref="Quiescence"/>: a settlement or a redelivery still on its way would make the
/// ledger look wrong, or right, too early), and checks DESIGN section 8 against the databases: one terminal status
/// per job, each job's money exactly once (<see cref="JobMoney"/>), every output readable and verified.
/// <see cref="ChaosFaults"/> picks other faults for a clustered broker and database.
/// </summary>
public sealed class ChaosRun(Network network, int jobs, int seed, Action<string> log, TimeSpan? outage = null, ChaosFaults kind = ChaosFaults.SingleServers)
{
    private const int Workers = 3;
    private readonly Random _random = new(seed);
    private readonly List<string> _faults = [];
    private readonly List<OutageLoad> _outages = [];
    private (HttpClient Http, string A, string B)? _client;
    private readonly List<(Account Operator, ServiceProcess Process)> _workers = [];
    private readonly List<string> _jobIds = [];

    public async Task<ChaosReport> RunAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var (http, a, b) = await StartAsync();
        _client = (http, a.Cid, b.Cid);

        // Jobs go in batches with a fault after each, so every fault lands on work in flight; each outage's load may
        // take up to OutageJobs more, wherever the seed puts it.
        var faults = Faults();
        var batched = jobs - 2 * OutageJobs;
        var batch = (batched + faults.Count) / (faults.Count + 1);
        foreach (var (name, inject) in faults.Append(("", () => Task.CompletedTask)))
        {
            await SubmitAsync(http, a.Cid, b.Cid, Math.Clamp(batched - (_jobIds.Count - _outages.Sum(o => o.Accepted + o.AcceptedAfter)), 0, batch));
            if (name.Length == 0)
                break;
            log($"chaos: {name} ({_jobIds.Count} jobs submitted)");
            await inject();
            _faults.Add(name);
        }
        await SubmitAsync(http, a.Cid, b.Cid, Math.Max(0, jobs - _jobIds.Count));
        log("chaos: faults done; waiting for every job to end");
        return await FinishAsync(http, clock, ct);
    }

    /// <summary>
    /// The whole run as one job array of <c>jobs</c> entries in one request (POST /v1/jobs:batch, retried with its
    /// Idempotency-Key), with a worker killed once a fifth of it has ended and the scheduler restarted at half.
    /// </summary>
    public async Task<ChaosReport> RunArrayAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var (http, a, b) = await StartAsync();
        var key = $"chaos-array-{seed}";
        var entries = Enumerable.Range(0, jobs).Select(_ => new { kernel = "vector-add", inputs = new { a = a.Cid, b = b.Cid }, requirements = new { region = "chaos" } }).ToList();
        var ids = await Eventually.UntilAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs:batch") { Content = JsonContent.Create(new { jobs = entries }, options: Api.Json) };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await http.SendAsync(request, ct);
            return response.StatusCode == HttpStatusCode.Accepted ? (await response.Content.ReadFromJsonAsync<ArrayAccepted>(Api.Json, ct))!.JobIds : null;
        }, ids => ids is not null, TimeSpan.FromMinutes(3), $"the array {key} accepted");
        _jobIds.AddRange(ids!);
        log($"chaos: array of {_jobIds.Count} jobs accepted after {clock.Elapsed.TotalSeconds:F0} s");

        await using var gateway = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
        foreach (var (share, name, inject) in new (int, string, Func<Task>)[] { (5, "killed a worker", KillAWorkerAsync), (2, "restarted scheduler", () => RestartAsync("scheduler")) })
        {
            await Eventually.UntilAsync(() => OpenAsync(gateway), open => open <= jobs - jobs / share, EndTimeout, $"1/{share} of the array ended");
            log($"chaos: {name} ({jobs - await OpenAsync(gateway)} jobs ended, {clock.Elapsed.TotalSeconds:F0} s)");
            await inject();
            _faults.Add(name);
        }
        return await FinishAsync(http, clock, ct);
    }

    private sealed record ArrayAccepted(List<string> JobIds);

    // Generous for this machine's rate of tiny jobs (tens a second); a lost job shows as a timeout naming it.
    private TimeSpan EndTimeout => TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(jobs / 5.0);

    private Task<int> OpenAsync(NpgsqlConnection gateway) =>
        gateway.ExecuteScalarAsync<int>("select count(*) from jobs where id = any(@ids) and status not in ('completed', 'failed', 'cancelled', 'rejected')", new { ids = _jobIds.ToArray() });

    private async Task<(HttpClient Http, Pinned A, Pinned B)> StartAsync()
    {
        log($"chaos: {jobs} jobs, {Workers} workers, seed {seed}");
        for (var i = 0; i < Workers; i++)
        {
            var account = await network.CreateOperatorAsync();
            _workers.Add((account, await network.StartWorkerAsync(account.Key, slots: 2, region: "chaos")));
        }
        var client = await network.CreateAccountAsync("client", 1_000_000m);
        var http = network.Client(client.Key);
        var a = await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4));
        var b = await http.PinAsync(NpyArray.FromFloat32([10f, 20f, 30f, 40f], 4));
        return (http, a, b);
    }

    private async Task<ChaosReport> FinishAsync(HttpClient http, Stopwatch clock, CancellationToken ct)
    {
        await using var gateway = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
        await Eventually.UntilAsync(() => OpenAsync(gateway), open => open == 0, EndTimeout, "every job of the chaos run in a terminal status");
        log($"chaos: every job ended after {clock.Elapsed.TotalSeconds:F0} s; waiting for nothing to be in flight");
        var quiet = await Quiescence.WaitAsync(network, TimeSpan.FromMinutes(3));
        log($"chaos: no message in flight after {clock.Elapsed.TotalSeconds:F0} s");
        try
        {
            return await CheckAsync(http, quiet.DeadLetters, clock.Elapsed, ct);
        }
        finally
        {
            http.Dispose();
        }
    }

    /// <summary>
    /// Submits jobs, each with an Idempotency-Key of its own, retrying through restarts: a retry of a request
    /// that did reach the gateway gets the same job back, so the client's count is exact.
    /// </summary>
    private async Task SubmitAsync(HttpClient http, string a, string b, int count)
    {
        for (var n = 0; n < count; n++)
        {
            var key = $"chaos-{seed}-{_jobIds.Count}";
            _jobIds.Add(await AcceptedAsync(http, a, b, key));
        }
    }

    /// <summary>The broker, the database and every service, in an order fixed by the seed.</summary>
    private List<(string Name, Func<Task> Inject)> Faults()
    {
        if (kind == ChaosFaults.ClusterFailover)
            return ClusterFaults();
        if (kind == ChaosFaults.Partition)
            return PartitionFaults();
        var faults = new List<(string Name, Func<Task> Inject)>
        {
            ("killed a worker", KillAWorkerAsync),
            ("restarted RabbitMQ", () => network.Environment.Infrastructure.RestartRabbitMqAsync()),
            ("restarted Postgres", RestartPostgresAsync),
            ($"stopped RabbitMQ for {Outage.TotalSeconds:F0} s under load", () => OutageAsync("RabbitMQ", network.Environment.Infrastructure.WithRabbitMqStoppedAsync)),
            ($"stopped Postgres for {Outage.TotalSeconds:F0} s under load", async () =>
            {
                await OutageAsync("Postgres", network.Environment.Infrastructure.WithPostgresStoppedAsync);
                NpgsqlConnection.ClearAllPools();
            }),
            ("redelivered sent messages", RedeliverAsync),
            ("killed a worker", KillAWorkerAsync),
        };
        foreach (var service in new[] { "storage", "rewards", "scheduler", "gateway" })
            faults.Add(($"restarted {service}", () => RestartAsync(service)));
        return [.. faults.OrderBy(_ => _random.Next())];
    }

    /// <summary>
    /// The broker node leading the scheduler's intake queue (where every node's results arrive) killed and kept down for
    /// <see cref="Outage"/> under load, then started again (it rejoins and its queue replicas catch up); then the
    /// Postgres primary killed and the standby promoted, with the load going on for <see cref="Outage"/> from the kill.
    /// </summary>
    private List<(string Name, Func<Task> Inject)> ClusterFaults()
    {
        var infrastructure = network.Environment.Infrastructure;
        return
        [
            ($"killed the RabbitMQ node leading the scheduler's intake for {Outage.TotalSeconds:F0} s under load", () => OutageAsync("RabbitMQ node", awaitCompletion: true, withStopped: async during =>
            {
                var node = await IntakeLeaderAsync();
                log($"chaos: killing RabbitMQ node {node + 1} of 3, the scheduler's intake's leader");
                await infrastructure.KillBrokerNodeAsync(node);
                try
                {
                    await during();
                }
                finally
                {
                    await infrastructure.StartBrokerNodeAsync(node);
                }
            })),
            ("killed the Postgres primary and promoted its standby under load", () => OutageAsync("Postgres primary", async during =>
            {
                await infrastructure.FailOverPostgresAsync();
                // This process's pooled connections to the old primary died with it.
                NpgsqlConnection.ClearAllPools();
                await during();
            })),
        ];
    }

    /// <summary>
    /// Node 1 cut off from the other two and from half the services (those reaching it over the bridge) for
    /// <see cref="Outage"/> under load, then healed: it pauses as the minority, its clients move to the majority,
    /// and it rejoins.
    /// </summary>
    private List<(string Name, Func<Task> Inject)> PartitionFaults()
    {
        var infrastructure = network.Environment.Infrastructure;
        return
        [
            ($"cut RabbitMQ node 1 off from the other nodes and half the services for {Outage.TotalSeconds:F0} s under load", () => OutageAsync("RabbitMQ node 1 partitioned", async during =>
            {
                await infrastructure.CutBrokerNodeAsync(0);
                try
                {
                    await during();
                }
                finally
                {
                    await infrastructure.HealBrokerNodeAsync(0);
                }
            })),
        ];
    }

    /// <summary>Which node (0-2) holds the scheduler's intake queue: a quorum queue's leader, a classic queue's only home.</summary>
    private async Task<int> IntakeLeaderAsync()
    {
        var path = $"api/queues/{Uri.EscapeDataString(network.Environment.Name)}/scheduler-node-intake";
        using var queue = System.Text.Json.JsonDocument.Parse(await network.Environment.Infrastructure.RabbitMqManagement.GetStringAsync(path));
        var node = (queue.RootElement.TryGetProperty("leader", out var leader) ? leader : queue.RootElement.GetProperty("node")).GetString()!;
        return network.Environment.Infrastructure.BrokerNodeIndex(node);
    }

    private TimeSpan Outage => outage ?? TimeSpan.FromSeconds(60);

    /// <summary>The most jobs one outage's load submits (a tenth of the run's, at least two): one may be accepted after it.</summary>
    private int OutageJobs => Math.Max(2, jobs / 10);

    /// <summary>
    /// A client's load while <paramref name="server"/> is down, five rounds a second for <see cref="Outage"/>: a job
    /// submitted (the same Idempotency-Key again after a refusal, as a client honouring Retry-After does; at most a
    /// tenth of the run's jobs are taken), the last accepted job's view read, the dashboard fetched. Every answer must
    /// be a success or a 503 with Retry-After (<see cref="OutageLoad"/>). After the outage the key refused last is sent
    /// until it is accepted: every job the client was promised is then followed to its end with the rest.
    /// </summary>
    /// <param name="awaitCompletion">
    /// Keep the server down and the load going past <see cref="Outage"/>, up to <see cref="CompletionDeadline"/>, until a
    /// job of the run completes: for a fault the network is meant to work through, "a job completed while it was down"
    /// is then asserted without betting on how long the clients take to move to the other nodes on a busy machine.
    /// The time to the first completion is reported, and the services' warnings of the outage are printed if it was slow.
    /// </param>
    private async Task OutageAsync(string server, Func<Func<Task>, Task> withStopped, bool awaitCompletion = false)
    {
        var (http, a, b) = _client ?? throw new InvalidOperationException("the run has not started");
        var load = new OutageLoad(server, Outage);
        string? refusedKey = null;
        await withStopped(async () =>
        {
            var completedBefore = await TryCountCompletedAsync();
            async Task<bool> CompletedSinceAsync() => (completedBefore ??= await TryCountCompletedAsync()) is { } before && await TryCountCompletedAsync() - before > 0;
            var stoppedAt = DateTimeOffset.UtcNow;
            var clock = Stopwatch.StartNew();
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
            while ((clock.Elapsed < Outage || (awaitCompletion && load.FirstCompletedAfter is null && clock.Elapsed < CompletionDeadline))
                   && await pace.WaitForNextTickAsync())
            {
                if (awaitCompletion && load.FirstCompletedAfter is null && await CompletedSinceAsync())
                    load.FirstCompletedAfter = clock.Elapsed;
                if (load.Accepted < OutageJobs - 1 && _jobIds.Count < jobs)
                {
                    var key = refusedKey ?? $"chaos-{seed}-{_jobIds.Count}";
                    var (status, id, problem) = await TrySubmitAsync(http, a, b, key);
                    if (id is not null)
                    {
                        _jobIds.Add(id);
                        load.Accepted++;
                        refusedKey = null;
                    }
                    else if (problem is null)
                    {
                        load.WritesRefused++;
                        refusedKey = key;
                    }
                    else
                    {
                        load.Unexpected.Add($"submit: {status} {problem}");
                        refusedKey = key;
                    }
                }
                if (_jobIds.Count > 0)
                {
                    var (status, problem) = await TryReadAsync(http, $"/v1/jobs/{_jobIds[^1]}");
                    if (status == HttpStatusCode.OK)
                        load.ReadsServed++;
                    else if (problem is null)
                        load.ReadsRefused++;
                    else
                        load.Unexpected.Add($"job view: {status} {problem}");
                }
                var (page, pageProblem) = await TryReadAsync(http, "/");
                if (page == HttpStatusCode.OK)
                    load.DashboardServed++;
                else
                    load.Unexpected.Add($"dashboard: {page} {pageProblem}");
            }
            load.CompletedDuring = await TryCountCompletedAsync() - completedBefore;
            load.Length = clock.Elapsed;
            if (awaitCompletion && !(load.FirstCompletedAfter < SlowRecovery))
                PrintServiceWarnings(stoppedAt, $"the first job completed {(load.FirstCompletedAfter is { } first ? $"{first.TotalSeconds:F1} s" : "never")} after {server} stopped");
        });
        if (refusedKey is not null)
        {
            _jobIds.Add(await AcceptedAsync(http, a, b, refusedKey));
            load.AcceptedAfter++;
        }
        log($"chaos: {load.Describe()}");
        _outages.Add(load);
    }

    /// <summary>How long an outage that awaits a completion may last at most.</summary>
    private static readonly TimeSpan CompletionDeadline = TimeSpan.FromSeconds(90);

    /// <summary>A first completion later than this after a broker node died is slow enough to show why.</summary>
    private static readonly TimeSpan SlowRecovery = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Every service's warnings, errors and MassTransit lines (connections, endpoints, transport retries) logged since
    /// <paramref name="since"/>, so a slow recovery in CI says which process waited for what.
    /// </summary>
    private void PrintServiceWarnings(DateTimeOffset since, string why)
    {
        log($"chaos: {why}; what the services logged since then, each in one line first (a CI summary keeps only a failure's first lines):");
        var details = new List<(string Service, List<string> Lines)>();
        foreach (var service in network.Services)
        {
            var name = Path.GetFileNameWithoutExtension(service.LogPath);
            var lines = new List<string>();
            int consumed = 0, connected = 0, ready = 0;
            DateTimeOffset? lastConsumed = null;
            foreach (var line in service.Log().Split('\n'))
            {
                // A line this cannot read is skipped: the diagnosis must not replace the failure it explains.
                try
                {
                    using var entry = System.Text.Json.JsonDocument.Parse(line);
                    var root = entry.RootElement;
                    var level = root.GetProperty("LogLevel").GetString();
                    var category = root.GetProperty("Category").GetString() ?? "";
                    var message = root.GetProperty("Message").GetString() ?? "";
                    // The console formatter's timestamp format ends in a space.
                    if (!DateTimeOffset.TryParse(root.GetProperty("Timestamp").GetString()?.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) || at < since)
                        continue;
                    // A consumer's span: the process took a message in.
                    if (category == "Platform.Spans" && message.Contains(" process Consumer ", StringComparison.Ordinal))
                    {
                        consumed++;
                        lastConsumed = at;
                    }
                    connected += message.StartsWith("Connected: ", StringComparison.Ordinal) ? 1 : 0;
                    ready += message.StartsWith("Endpoint Ready: ", StringComparison.Ordinal) ? 1 : 0;
                    // Topology lines (declare, bind) repeat on every reconnect and say nothing about waiting.
                    var connection = category.StartsWith("MassTransit", StringComparison.Ordinal)
                        && !message.StartsWith("Declare ", StringComparison.Ordinal) && !message.StartsWith("Bind ", StringComparison.Ordinal)
                        && !message.StartsWith("R-", StringComparison.Ordinal);
                    if (level is "Warning" or "Error" or "Critical" || connection)
                        lines.Add($"    {at:HH:mm:ss.fff} {level} {category}: {message[..Math.Min(message.Length, 240)]}");
                }
                catch
                {
                    // Not a log line this can read (a partial last line, another format): skipped.
                }
            }
            // Counted from what the cluster networks log: MassTransit's lines at Debug, and the consumer spans recorded.
            log($"  {name}: {connected} MassTransit Connected lines, {ready} Endpoint Ready lines, {consumed} consumer spans"
                + (lastConsumed is { } last ? $" (the last at {last:HH:mm:ss.fff})" : "") + $", {lines.Count} lines below");
            details.Add((name, lines));
        }
        foreach (var (name, lines) in details)
        {
            log($"  {name}:");
            foreach (var line in lines.Take(40))
                log(line);
        }
    }

    /// <summary>How many of the run's jobs have completed, from the gateway's database; null while it cannot be read.</summary>
    private async Task<int?> TryCountCompletedAsync()
    {
        try
        {
            await using var gateway = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
            return await gateway.ExecuteScalarAsync<int>("select count(*) from jobs where id = any(@ids) and status = 'completed'", new { ids = _jobIds.ToArray() });
        }
        catch (NpgsqlException)
        {
            return null;
        }
    }

    /// <summary>The job submitted with <paramref name="key"/>, sent again until the gateway accepts it (through restarts and outages).</summary>
    private static async Task<string> AcceptedAsync(HttpClient http, string a, string b, string key) =>
        (await Eventually.UntilAsync(async () => (await TrySubmitAsync(http, a, b, key)).Id, id => id is not null, TimeSpan.FromMinutes(3), $"job {key} accepted"))!;

    /// <summary>One submission: its status, the job's id when accepted, and what was wrong when it was neither accepted nor a proper 503.</summary>
    private static async Task<(HttpStatusCode? Status, string? Id, string? Problem)> TrySubmitAsync(HttpClient http, string a, string b, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = JsonContent.Create(new { kernel = "vector-add", inputs = new { a, b }, requirements = new { region = "chaos" } }, options: Api.Json),
        };
        request.Headers.Add("Idempotency-Key", key);
        var (response, problem) = await SendAsync(http, request);
        using (response)
        {
            if (response?.StatusCode == HttpStatusCode.Accepted)
                return (response.StatusCode, (await response.Content.ReadFromJsonAsync<Job>(Api.Json))!.Id, null);
            return (response?.StatusCode, null, problem);
        }
    }

    private static async Task<(HttpStatusCode? Status, string? Problem)> TryReadAsync(HttpClient http, string path)
    {
        var (response, problem) = await SendAsync(http, new HttpRequestMessage(HttpMethod.Get, path));
        using (response)
            return (response?.StatusCode, problem);
    }

    /// <summary>
    /// Sends with a 30 s limit. The problem is null for a 2xx or for a 503 that says when to try again as a problem;
    /// else it says what was wrong (the status and the start of the body, or no answer).
    /// </summary>
    private static async Task<(HttpResponseMessage? Response, string? Problem)> SendAsync(HttpClient http, HttpRequestMessage request)
    {
        using (request)
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                var response = await http.SendAsync(request, limit.Token);
                if (response.IsSuccessStatusCode)
                    return (response, null);
                var body = await response.Content.ReadAsStringAsync();
                var proper = response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null
                    && response.Content.Headers.ContentType?.MediaType == "application/problem+json";
                return (response, proper ? null : $"{(int)response.StatusCode} Retry-After={response.Headers.RetryAfter} {body[..Math.Min(200, body.Length)]}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return (null, $"no answer: {ex.GetType().Name} {ex.Message}");
            }
        }
    }

    private async Task RestartPostgresAsync()
    {
        await network.Environment.Infrastructure.RestartPostgresAsync();
        // This process's pooled connections died with the server; the services find out by themselves.
        NpgsqlConnection.ClearAllPools();
    }

    private async Task KillAWorkerAsync()
    {
        var index = _random.Next(_workers.Count);
        var (account, process) = _workers[index];
        process.Kill();
        // Its operator brings a new node (a new identity) back; the lost one's attempts move to others.
        _workers[index] = (account, await network.StartWorkerAsync(account.Key, slots: 2, region: "chaos"));
    }

    private async Task RestartAsync(string service)
    {
        foreach (var process in network.Services.Where(s => s.Service == service && !s.HasExited).ToList())
            await network.RestartAsync(process);
    }

    /// <summary>Marks the last sent outbox rows of every service unsent: the relays publish them again.</summary>
    private async Task RedeliverAsync()
    {
        foreach (var service in new[] { "gateway", "scheduler", "rewards", "storage" })
        {
            await using var db = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor(service));
            var again = await db.ExecuteAsync(
                "update outbox set sent_at = null where id in (select id from outbox where sent_at is not null order by id desc limit 50)");
            log($"chaos: {service} publishes {again} sent messages again");
        }
    }

    private async Task<ChaosReport> CheckAsync(HttpClient http, IReadOnlyList<string> deadLetters, TimeSpan elapsed, CancellationToken ct)
    {
        var ids = _jobIds.ToArray();
        await using var gateway = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("gateway"));
        await using var scheduler = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("scheduler"));
        await using var rewards = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor("rewards"));

        var statuses = (await gateway.QueryAsync<(string Id, string Status, string? Outputs, decimal? Cost)>(
            "select id, status, outputs::text, cost from jobs where id = any(@ids)", new { ids })).ToList();
        var schedulerStatuses = (await scheduler.QueryAsync<(string Id, string Status)>(
            "select id, status from jobs where id = any(@ids)", new { ids })).ToDictionary(r => r.Id, r => r.Status);
        int Count(string status) => statuses.Count(s => s.Status == status);
        var mismatches = statuses.Count(s => schedulerStatuses.GetValueOrDefault(s.Id) is { } other && other != s.Status && s.Status != "rejected");

        // Ledger: every payout and mint is one posting per accepted attempt; none for an attempt not accepted.
        var duplicatePayments = await rewards.ExecuteScalarAsync<int>(
            """
            select count(*) from (select t.job_id, p.worker_id from postings p join transactions t on t.id = p.transaction_id
                                  where p.kind = 'payout' and t.job_id = any(@ids) group by t.job_id, p.worker_id having count(*) > 1) d
            """, new { ids });
        var duplicateMints = await rewards.ExecuteScalarAsync<int>(
            """
            select count(*) from (select t.job_id, p.worker_id from postings p join transactions t on t.id = p.transaction_id
                                  where p.kind = 'mint' and t.job_id = any(@ids) group by t.job_id, p.worker_id having count(*) > 1) d
            """, new { ids });
        var accepted = (await scheduler.QueryAsync<(string JobId, string WorkerId)>(
            "select job_id, worker_id from attempts where status = 'accepted' and job_id = any(@ids)", new { ids })).ToHashSet();
        var paid = await rewards.QueryAsync<(string JobId, string WorkerId)>(
            """
            select t.job_id, p.worker_id from postings p join transactions t on t.id = p.transaction_id
            where p.kind in ('payout', 'mint') and t.job_id = any(@ids) and p.worker_id is not null
            """, new { ids });
        var paidWithoutAcceptance = paid.Count(p => !accepted.Contains(p));
        var money = await JobMoney.CheckAsync(rewards, scheduler, statuses.Select(s => (s.Id, s.Status, s.Cost)).ToList());
        // Only this run's jobs used the network: with all of them ended, nothing may be left in escrow.
        var escrowHeld = await rewards.ExecuteScalarAsync<decimal>("select coalesce(sum(amount), 0) from postings where account_id = 'sys:escrow'");
        var balancesOff = await JobMoney.BalancesOffTheirPostingsAsync(rewards);
        var unbalanced = await rewards.ExecuteScalarAsync<int>(
            "select count(*) from (select transaction_id from postings group by transaction_id having sum(amount) <> 0) u");

        // Every completed job's output, read back through the gateway (storage verifies it against its CID); a CID
        // names its bytes, so each distinct one is read once.
        var checkedOutputs = 0;
        var verified = 0;
        var readBack = new Dictionary<string, bool>();
        foreach (var (_, _, outputs, _) in statuses.Where(s => s.Status == "completed"))
        {
            checkedOutputs++;
            var cid = System.Text.Json.JsonDocument.Parse(outputs!).RootElement.GetProperty("c").GetString()!;
            if (!readBack.TryGetValue(cid, out var good))
            {
                using var response = await http.GetAsync($"/v1/blobs/{cid}", ct);
                readBack[cid] = good = response.StatusCode == HttpStatusCode.OK
                    && Npy.Read(await response.Content.ReadAsStreamAsync(ct)).Float32 is [11f, 22f, 33f, 44f];
            }
            if (good)
                verified++;
        }

        return new ChaosReport(ids.Length, Count("completed"), Count("failed"), Count("cancelled"), Count("rejected"),
            statuses.Count(s => s.Status is not ("completed" or "failed" or "cancelled" or "rejected")) + (ids.Length - statuses.Count),
            mismatches, duplicatePayments, duplicateMints, paidWithoutAcceptance, money, escrowHeld, balancesOff, unbalanced, deadLetters,
            checkedOutputs, verified, _faults, elapsed, _outages);
    }
}
