using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.Scheduler.Placement;

/// <summary>
/// How many jobs each client started within <see cref="SchedulerOptions.FairShareWindow"/>, kept in memory in
/// one-second buckets, so a dispatch pass no longer counts the window's assignments in the database (tens of
/// thousands of rows at a few dozen jobs a second). Loaded from the database on the first pass and again every
/// <see cref="Refresh"/>, which also brings in what other scheduler instances started; between loads an instance adds
/// its own assignments as it commits them. Fair share therefore lags another instance's assignments by at most
/// <see cref="Refresh"/>, which only changes whose turn it is, never whether a job is placed. Thread-safe: passes may
/// run at once.
/// </summary>
public sealed class FairShareCounters(IOptions<SchedulerOptions> options, TimeProvider clock)
{
    public static readonly TimeSpan Refresh = TimeSpan.FromSeconds(30);

    private sealed class Bucket(long second)
    {
        public long Second { get; } = second;
        public long Count { get; set; }
    }

    private sealed class Client
    {
        public Queue<Bucket> Buckets { get; } = new();
        public Bucket? Last { get; set; }
        public long Total { get; set; }

        public void Add(long second, long count)
        {
            if (Last is null || Last.Second != second)
            {
                Last = new Bucket(second);
                Buckets.Enqueue(Last);
            }
            Last.Count += count;
            Total += count;
        }
    }

    private readonly Lock _lock = new();
    private Dictionary<string, Client> _clients = new(StringComparer.Ordinal);
    private DateTimeOffset _loadedAt = DateTimeOffset.MinValue;

    /// <summary>Reloads from the database when the counters are older than <see cref="Refresh"/> (or were never loaded).</summary>
    public async Task LoadIfStaleAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            if (now - _loadedAt < Refresh)
                return;
        }
        var rows = await connection.QueryAsync<(string Client, long Second, long Count)>(new CommandDefinition(
            """
            select client_account_id, floor(extract(epoch from last_assigned_at))::bigint, count(*)
            from jobs where last_assigned_at > @since group by 1, 2 order by 1, 2
            """, new { since = now - options.Value.FairShareWindow }, tx, cancellationToken: ct));
        var loaded = new Dictionary<string, Client>(StringComparer.Ordinal);
        foreach (var (client, second, count) in rows)
        {
            if (!loaded.TryGetValue(client, out var c))
                loaded[client] = c = new Client();
            c.Add(second, count);
        }
        lock (_lock)
        {
            _clients = loaded;
            _loadedAt = now;
        }
    }

    /// <summary>Counts assignments this instance just committed.</summary>
    public void Record(IEnumerable<string> clients, DateTimeOffset at)
    {
        var second = at.ToUnixTimeSeconds();
        lock (_lock)
        {
            foreach (var id in clients)
            {
                if (!_clients.TryGetValue(id, out var c))
                    _clients[id] = c = new Client();
                c.Add(second, 1);
            }
        }
    }

    /// <summary>Each client's count within the window as of now, for the ranking query; clients with none are left out.</summary>
    public (string[] Clients, long[] Counts) Snapshot()
    {
        var since = (clock.GetUtcNow() - options.Value.FairShareWindow).ToUnixTimeSeconds();
        lock (_lock)
        {
            foreach (var (id, c) in _clients.ToList())
            {
                while (c.Buckets.Count > 0 && c.Buckets.Peek().Second <= since)
                    c.Total -= c.Buckets.Dequeue().Count;
                if (c.Buckets.Count == 0)
                    c.Last = null;
                if (c.Total == 0)
                    _clients.Remove(id);
            }
            return ([.. _clients.Keys], [.. _clients.Values.Select(c => c.Total)]);
        }
    }
}
