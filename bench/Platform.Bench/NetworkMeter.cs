using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Npgsql;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// What the network spent between two snapshots: CPU per process (each service, each worker, Postgres with all
/// its backends, RabbitMQ's beam.smp, and the benchmark client apart), the machine's busy CPU (others' work
/// included, to show contention), transactions per database (pg_stat_database.xact_commit) and, when
/// pg_stat_statements is loaded, time and calls per statement.
/// </summary>
public sealed partial class NetworkMeter
{
    private sealed record Probe(string Name, Func<long?> Ticks);

    /// <summary>One pg_stat_statements entry (counters are cumulative).</summary>
    public sealed record StatementRow(string Database, bool TopLevel, long Calls, long Rows, double PlanMs, double ExecMs, string Query);

    public sealed record Snapshot(
        long Timestamp,
        int Completed,
        int Submitted,
        int Outstanding,
        long Polls,
        Dictionary<string, long?> Ticks,
        long MachineBusyTicks,
        Dictionary<string, long> Commits,
        Dictionary<(long UserId, long DbId, long QueryId, bool TopLevel), StatementRow>? Statements);

    private readonly List<Probe> probes;
    private readonly string adminConnectionString;
    private readonly string databasePrefix;

    private NetworkMeter(List<Probe> probes, string adminConnectionString, string databasePrefix, string? statementsUnavailable)
    {
        this.probes = probes;
        this.adminConnectionString = adminConnectionString;
        this.databasePrefix = databasePrefix;
        StatementsUnavailable = statementsUnavailable;
    }

    /// <summary>Why statements are not reported, or null when they are.</summary>
    public string? StatementsUnavailable { get; }

    /// <summary>
    /// Finds the processes: the network's services from their launch, Postgres's postmaster as the parent of a
    /// backend of ours (pg_backend_pid), RabbitMQ's beam.smp from the management API (/api/nodes os_pid). A
    /// server not on this machine (ConnectionStrings__* pointing elsewhere) is reported as unmeasured.
    /// </summary>
    public static async Task<NetworkMeter> CreateAsync(TestEnvironment env, BenchNetwork network)
    {
        var probes = new List<Probe>();
        var workers = 0;
        foreach (var service in network.Services.OrderBy(s => s.Service == "worker").ThenBy(s => Array.IndexOf(ServiceOrder, s.Service)))
        {
            var pid = service.ProcessId;
            probes.Add(new Probe(service.Service == "worker" ? $"worker-{++workers}" : service.Service, () => ProcessCpu.OwnTicks(pid)));
        }

        var admin = new NpgsqlConnectionStringBuilder(env.Infrastructure.PostgresConnectionString) { Database = "postgres" }.ConnectionString;
        await using var connection = new NpgsqlConnection(admin);
        await connection.OpenAsync();
        var backend = await connection.ExecuteScalarAsync<int>("select pg_backend_pid()");
        var postmaster = ProcessCpu.Read(backend)?.ParentId;
        probes.Add(postmaster is { } pm && ProcessCpu.Name(pm) == "postgres"
            ? new Probe("postgres", () => ProcessCpu.TreeTicks(pm))
            : new Probe("postgres", () => null));

        var beam = await BeamPidAsync(env.Infrastructure);
        probes.Add(beam is { } b ? new Probe("rabbitmq", () => ProcessCpu.OwnTicks(b)) : new Probe("rabbitmq", () => null));

        string? unavailable = null;
        try
        {
            // Needs a superuser, which is why the benchmark does it and no service migration does.
            await connection.ExecuteAsync("create extension if not exists pg_stat_statements");
            await connection.ExecuteScalarAsync<long>("select count(*) from pg_stat_statements");
        }
        catch (PostgresException e)
        {
            unavailable = $"pg_stat_statements unavailable ({e.MessageText}); scripts/infra.sh loads it in the servers it starts";
        }

        return new NetworkMeter(probes, admin, env.Name + "_", unavailable);
    }

    /// <summary>
    /// The /proc parser against the runtime's own reading of this process's CPU time: a field counted wrong
    /// would make every figure wrong, so the run stops instead (the bench has no test project of its own).
    /// </summary>
    public static void CheckParser()
    {
        using var self = Process.GetCurrentProcess();
        var runtime = self.TotalProcessorTime.TotalMilliseconds;
        var parsed = ProcessCpu.Milliseconds(ProcessCpu.OwnTicks(Environment.ProcessId) ?? 0);
        var stat = ProcessCpu.Parse("4242 (a) b (c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1234 567 89 10 20 0 1 0 100 1000 10");
        if (Math.Abs(parsed - runtime) > 50 + 0.02 * runtime
            || stat is not { ParentId: 17, UserTicks: 1234, SystemTicks: 567, ChildUserTicks: 89, ChildSystemTicks: 10 })
        {
            throw new InvalidOperationException(
                $"ProcessCpu reads this process's CPU as {parsed:N0} ms, the runtime as {runtime:N0} ms (or misparses a name with ')'): fix the parser first");
        }
    }

    private static readonly string[] ServiceOrder = ["gateway", "scheduler", "rewards", "storage", "worker"];

    public async Task<Snapshot> SnapshotAsync(CompletionTracker tracker)
    {
        await tracker.PollAsync();
        var completed = tracker.Completed + tracker.OtherTerminal;
        var polls = tracker.Polls;
        var timestamp = Stopwatch.GetTimestamp();
        var ticks = probes.ToDictionary(p => p.Name, p => p.Ticks());
        ticks["bench client"] = ProcessCpu.OwnTicks(Environment.ProcessId);
        var machine = MachineBusyTicks();

        await using var connection = new NpgsqlConnection(adminConnectionString);
        await connection.OpenAsync();
        var commits = (await connection.QueryAsync<(string Name, long Commits)>(
                Marker + " select datname, xact_commit from pg_stat_database where starts_with(datname, @prefix)", new { prefix = databasePrefix }))
            .ToDictionary(r => r.Name[databasePrefix.Length..], r => r.Commits);

        Dictionary<(long, long, long, bool), StatementRow>? statements = null;
        if (StatementsUnavailable is null)
        {
            statements = new();
            var rows = await connection.QueryAsync<(long UserId, long DbId, long QueryId, bool TopLevel, string Datname, long Calls, long Rows, double PlanMs, double ExecMs, string Query)>(
                Marker + """
                 select s.userid::bigint, s.dbid::bigint, s.queryid, s.toplevel, d.datname, s.calls, s.rows, s.total_plan_time, s.total_exec_time, s.query
                from pg_stat_statements s join pg_database d on d.oid = s.dbid
                where starts_with(d.datname, @prefix) and s.queryid is not null
                """, new { prefix = databasePrefix });
            foreach (var r in rows)
            {
                statements[(r.UserId, r.DbId, r.QueryId, r.TopLevel)] =
                    new StatementRow(r.Datname[databasePrefix.Length..], r.TopLevel, r.Calls, r.Rows, r.PlanMs, r.ExecMs, r.Query);
            }
        }

        return new Snapshot(timestamp, completed, tracker.Submitted, tracker.Outstanding, polls, ticks, machine, commits, statements);
    }

    private const string Marker = CompletionTracker.Marker;

    /// <summary>Prints what was spent between <paramref name="before"/> and <paramref name="after"/>, per job.</summary>
    public void Report(Snapshot before, Snapshot after, int topStatements)
    {
        var jobs = after.Completed - before.Completed;
        var seconds = Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds;
        if (jobs <= 0)
        {
            Console.WriteLine("  no job finished in the window: nothing to divide by");
            return;
        }

        var accepted = after.Submitted - before.Submitted;
        Console.WriteLine($"  window: {jobs:N0} jobs terminal in {seconds:N1} s = {jobs / seconds:N1} jobs/s; {accepted:N0} accepted; in flight at its start {before.Outstanding:N0}, at its end {after.Outstanding:N0}");
        if (Math.Abs(accepted - jobs) > 0.1 * jobs)
        {
            // The per-job figures divide all work in the window by the jobs finished in it; that holds when as many start as finish.
            Console.WriteLine("  warning: accepted and finished differ by more than 10%: not a steady state, the per-job figures below are skewed");
        }
        Console.WriteLine("  CPU per job (utime+stime from /proc; Postgres = postmaster + reaped and live backends):");
        double total = 0;
        var unmeasured = new List<string>();
        foreach (var (name, end) in after.Ticks)
        {
            var start = before.Ticks.GetValueOrDefault(name);
            if (start is null || end is null)
            {
                unmeasured.Add(name);
                continue;
            }

            var ms = ProcessCpu.Milliseconds(end.Value - start.Value);
            if (name != "bench client")
            {
                total += ms;
            }

            Console.WriteLine($"    {name,-14} {ms / jobs,8:N2} ms/job   {ms / 1000 / seconds,5:N2} cores");
        }

        var machineMs = ProcessCpu.Milliseconds(after.MachineBusyTicks - before.MachineBusyTicks);
        Console.WriteLine($"    {"network total",-14} {total / jobs,8:N2} ms/job   {total / 1000 / seconds,5:N2} cores   (bench client not included)");
        Console.WriteLine($"    machine busy   {machineMs / 1000 / seconds,5:N2} of {Environment.ProcessorCount} cores (everything running, the bench and other users included)");
        if (unmeasured.Count > 0)
        {
            Console.WriteLine($"    not measured (process gone or on another machine): {string.Join(", ", unmeasured)}");
        }

        Console.WriteLine("  transactions per job (pg_stat_database.xact_commit, reads included; the bench's own polls subtracted):");
        long commits = 0;
        foreach (var (database, end) in after.Commits.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var delta = end - before.Commits.GetValueOrDefault(database);
            if (database == "gateway")
            {
                delta -= after.Polls - before.Polls;
            }

            commits += delta;
            Console.WriteLine($"    {database,-14} {(double)delta / jobs,8:N1}");
        }

        Console.WriteLine($"    {"total",-14} {(double)commits / jobs,8:N1}");

        if (before.Statements is null || after.Statements is null)
        {
            Console.WriteLine($"  statements: {StatementsUnavailable}");
            return;
        }

        var deltas = after.Statements
            .Where(s => s.Value.TopLevel && !s.Value.Query.Contains(Marker, StringComparison.Ordinal))
            .Select(s =>
            {
                var b = before.Statements.GetValueOrDefault(s.Key);
                return s.Value with
                {
                    Calls = s.Value.Calls - (b?.Calls ?? 0),
                    Rows = s.Value.Rows - (b?.Rows ?? 0),
                    PlanMs = s.Value.PlanMs - (b?.PlanMs ?? 0),
                    ExecMs = s.Value.ExecMs - (b?.ExecMs ?? 0),
                };
            })
            .Where(s => s.Calls > 0)
            .ToList();
        Console.WriteLine("  statements per job (pg_stat_statements, top level; plan + execution wall time inside Postgres, lock waits included):");
        foreach (var group in deltas.GroupBy(s => s.Database).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Console.WriteLine($"    {group.Key,-14} {(double)group.Sum(s => s.Calls) / jobs,8:N1} statements   {group.Sum(s => s.PlanMs + s.ExecMs) / jobs,7:N2} ms/job");
        }

        Console.WriteLine($"    {"total",-14} {(double)deltas.Sum(s => s.Calls) / jobs,8:N1} statements   {deltas.Sum(s => s.PlanMs + s.ExecMs) / jobs,7:N2} ms/job");
        if (topStatements <= 0)
        {
            return;
        }

        Console.WriteLine($"  top {topStatements} statements by plan + execution time (wall time inside Postgres: waits for row locks included):");
        Console.WriteLine("    calls/job  rows/job  plan µs/job  exec µs/job  database   statement");
        foreach (var s in deltas.OrderByDescending(s => s.PlanMs + s.ExecMs).Take(topStatements))
        {
            var text = Whitespace().Replace(s.Query, " ").Trim();
            Console.WriteLine($"    {(double)s.Calls / jobs,9:N2} {(double)s.Rows / jobs,9:N2} {s.PlanMs * 1000 / jobs,12:N1} {s.ExecMs * 1000 / jobs,12:N1}  {s.Database,-10} {text[..Math.Min(text.Length, 110)]}");
        }
    }

    /// <summary>Prints the CPU the network burns with no job to run (timers, polls, heartbeats), per second.</summary>
    public static void ReportIdle(Snapshot before, Snapshot after)
    {
        var seconds = Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds;
        var parts = new List<string>();
        double total = 0;
        foreach (var (name, end) in after.Ticks)
        {
            if (name == "bench client" || end is null || before.Ticks.GetValueOrDefault(name) is not { } start)
            {
                continue;
            }

            var ms = ProcessCpu.Milliseconds(end.Value - start) / seconds;
            total += ms;
            parts.Add($"{name} {ms:N0}");
        }

        Console.WriteLine($"  idle network ({seconds:N0} s, no jobs): {total:N0} ms of CPU per second in all ({string.Join(", ", parts)})");
    }

    /// <summary>The load average now (/proc/loadavg: 1, 5 and 15 minutes).</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    // Busy ticks of all cores from /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal.
    private static long MachineBusyTicks()
    {
        try
        {
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long Field(int i) => long.Parse(fields[i], CultureInfo.InvariantCulture);
            return Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>RabbitMQ's beam.smp on this machine (from /api/nodes os_pid), or null.</summary>
    public static async Task<int?> BeamPidAsync(PlatformInfrastructure infrastructure)
    {
        // The fixture's private broker runs with HOME = its folder (scripts/infra.sh), which the VM gets as -home;
        // the management API only knows os_pid once the node has emitted its first statistics (seconds after start).
        var home = Path.Combine(infrastructure.RepoRoot, ".platform", $"test-{Environment.ProcessId}", "rabbitmq");
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var candidate)
                && ProcessCpu.Name(candidate) == "beam.smp"
                && HasArguments(candidate, "-home", home))
            {
                return candidate;
            }
        }

        try
        {
            using var response = await infrastructure.RabbitMqManagement.GetAsync(new Uri("api/nodes", UriKind.Relative));
            response.EnsureSuccessStatusCode();
            using var nodes = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            foreach (var node in nodes.RootElement.EnumerateArray())
            {
                // os_pid is a string in the management API.
                if (node.TryGetProperty("os_pid", out var osPid)
                    && int.TryParse(osPid.ValueKind == JsonValueKind.String ? osPid.GetString() : osPid.GetRawText(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                    && ProcessCpu.Name(pid) == "beam.smp")
                {
                    return pid;
                }
            }
        }
        catch (HttpRequestException)
        {
            // management API unreachable: RabbitMQ's CPU stays unmeasured
        }

        return null;
    }

    private static bool HasArguments(int pid, string name, string value)
    {
        try
        {
            var args = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline").Split('\0');
            return args.Zip(args.Skip(1)).Any(pair => pair.First == name && pair.Second == value);
        }
        catch (IOException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
