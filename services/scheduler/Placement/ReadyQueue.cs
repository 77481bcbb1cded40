using Dapper;
using Npgsql;

namespace Platform.Scheduler.Placement;

/// <summary>
/// The queued jobs a dispatch pass chooses from, in memory: per client, in queue order (priority, then time queued),
/// so a pass ranks the clients' queue heads without reading the queue from the database. The database stays the
/// truth: a pass claims the jobs it chose by id (<c>for update skip locked</c>, still queued), and a chosen job the
/// claim does not return (assigned by another scheduler, cancelled) is dropped from here.
/// </summary>
/// <remarks>
/// Kept current by this scheduler's intake (jobs it queues are added once their transaction commits), by each pass
/// reading the few requeued jobs (a retry or replica: attempted before, queued again by any path), and by a full reload
/// on start and every <see cref="SchedulerOptions.ReadyQueueReload"/>, which brings in what other scheduler instances
/// queued. Thread-safe: passes may run at once.
/// </remarks>
public sealed class ReadyQueue
{
    public sealed record Entry(string Id, string ClientAccountId, int Priority, DateTime QueuedAt);

    // Priority first, then the time queued, then the id: the order the dispatcher always took a client's jobs in.
    private static readonly Comparer<Entry> QueueOrder = Comparer<Entry>.Create((a, b) =>
        a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority)
        : a.QueuedAt != b.QueuedAt ? a.QueuedAt.CompareTo(b.QueuedAt)
        : string.CompareOrdinal(a.Id, b.Id));

    private readonly Lock _lock = new();
    private readonly Dictionary<string, SortedSet<Entry>> _byClient = [];
    private readonly Dictionary<string, Entry> _byId = [];
    private long _loadedAtTicks = long.MinValue;
    // One list per reload running (passes may run at once): what is added while its read runs.
    private readonly List<List<Entry>> _addedDuringReloads = [];

    public int Count
    {
        get
        {
            lock (_lock)
                return _byId.Count;
        }
    }

    public bool LoadedSince(DateTimeOffset since) => Interlocked.Read(ref _loadedAtTicks) >= since.UtcTicks;

    public void Add(IEnumerable<Entry> entries)
    {
        lock (_lock)
        {
            foreach (var entry in entries)
                AddLocked(entry);
        }
    }

    public void Remove(IEnumerable<string> ids)
    {
        lock (_lock)
        {
            foreach (var id in ids)
                RemoveLocked(id);
        }
    }

    private void RemoveLocked(string id)
    {
        if (!_byId.Remove(id, out var entry))
            return;
        var queue = _byClient[entry.ClientAccountId];
        queue.Remove(entry);
        if (queue.Count == 0)
            _byClient.Remove(entry.ClientAccountId);
    }

    private void AddLocked(Entry entry)
    {
        foreach (var added in _addedDuringReloads)
            added.Add(entry);
        if (_byId.TryGetValue(entry.Id, out var known) && known == entry)
            return;
        // Queued again since (a retry keeps its place, a new queueing takes a new one): the latest word wins.
        RemoveLocked(entry.Id);
        _byId[entry.Id] = entry;
        if (!_byClient.TryGetValue(entry.ClientAccountId, out var queue))
            _byClient[entry.ClientAccountId] = queue = new SortedSet<Entry>(QueueOrder);
        queue.Add(entry);
    }

    private const string SelectQueued = """
        select id, client_account_id as ClientAccountId, priority, queued_at as QueuedAt from jobs where status = 'queued'
        """;

    /// <summary>
    /// Replaces the whole queue with the database's. Jobs added while the read runs are kept: their transactions may
    /// have committed after its snapshot.
    /// </summary>
    public async Task ReloadAsync(NpgsqlConnection connection, NpgsqlTransaction tx, DateTimeOffset now, CancellationToken ct)
    {
        var addedMeanwhile = new List<Entry>();
        lock (_lock)
            _addedDuringReloads.Add(addedMeanwhile);
        try
        {
            var queued = (await connection.QueryAsync<Entry>(new CommandDefinition(SelectQueued, transaction: tx, cancellationToken: ct))).ToList();
            lock (_lock)
            {
                _addedDuringReloads.Remove(addedMeanwhile);
                _byId.Clear();
                _byClient.Clear();
                foreach (var entry in queued.Concat(addedMeanwhile))
                    AddLocked(entry);
            }
            Interlocked.Exchange(ref _loadedAtTicks, now.UtcTicks);
        }
        finally
        {
            lock (_lock)
                _addedDuringReloads.Remove(addedMeanwhile);
        }
    }

    // Requeued jobs (attempted before) are few; every pass reads them, so a retry is placed at once whichever path or
    // scheduler queued it again (jobs_requeued).
    private const string SelectRequeued = """
        select id, client_account_id as ClientAccountId, priority, queued_at as QueuedAt from jobs
        where status = 'queued' and attempt_count > 0
        order by priority desc, queued_at, id
        limit @Limit
        """;

    public async Task AddRequeuedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, int limit, CancellationToken ct) =>
        Add(await connection.QueryAsync<Entry>(new CommandDefinition(SelectRequeued, new { Limit = limit }, tx, cancellationToken: ct)));

    /// <summary>
    /// Up to <paramref name="window"/> jobs in fair-share order: each job ranks by its place in its client's queue plus
    /// the client's recent starts (<paramref name="usage"/>), so a burst of 10,000 from one client does not stand in
    /// front of another's single job and clients take turns. Only each client's first <paramref name="window"/> jobs
    /// can be among them. Jobs in <paramref name="skip"/> are passed over.
    /// </summary>
    public List<Entry> Candidates(int window, IReadOnlyDictionary<string, long> usage, IReadOnlySet<string>? skip = null)
    {
        var ranked = new List<(long Rank, Entry Entry)>();
        lock (_lock)
        {
            foreach (var (client, queue) in _byClient)
            {
                var used = usage.GetValueOrDefault(client);
                var place = 0L;
                foreach (var entry in queue)
                {
                    if (skip?.Contains(entry.Id) == true)
                        continue;
                    ranked.Add((++place + used, entry));
                    if (place >= window)
                        break;
                }
            }
        }
        ranked.Sort((a, b) => a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank) : QueueOrder.Compare(a.Entry, b.Entry));
        return [.. ranked.Take(window).Select(r => r.Entry)];
    }
}
