using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Hosting.Database;

namespace Platform.Scheduler.Placement;

/// <summary>
/// One placement a worker took part in, as stored. <paramref name="Placement"/> tells placements apart and is never
/// shown: the job id and which of its attempts was being placed, so a job's replica or spot check is a placement
/// of its own, while a job that waits through several passes for the same attempt counts once.
/// </summary>
public sealed record PlacementRecord(DateTimeOffset At, string Placement, string Kernel, string Code, string Message, string? Fix, string? ChosenWorkerId);

/// <summary>
/// The last placements each worker took part in and why it was passed over. The dispatcher adds records as it
/// places jobs; they are written to the database about once a second by <see cref="PlacementLogWriter"/>, off the
/// dispatch path, merged there with what other scheduler instances wrote, so any instance can answer
/// <c>GET /v1/workers/{id}/placement</c>. A job's attempt that waits through several passes counts once per worker,
/// with its latest outcome.
/// </summary>
public sealed class PlacementLog(IOptions<SchedulerOptions> options)
{
    private readonly Lock _lock = new();
    private Dictionary<string, List<PlacementRecord>> _pending = [];

    public int Keep => options.Value.PlacementHistory;

    public void Add(string workerId, PlacementRecord record)
    {
        lock (_lock)
        {
            if (!_pending.TryGetValue(workerId, out var records))
                _pending[workerId] = records = [];
            var same = records.FindIndex(r => r.Placement == record.Placement);
            if (same >= 0)
                records.RemoveAt(same);
            else if (records.Count >= Keep)
                records.RemoveAt(0);
            records.Add(record);
        }
    }

    /// <summary>Takes what was added since the last call.</summary>
    public Dictionary<string, List<PlacementRecord>> Drain()
    {
        lock (_lock)
        {
            var drained = _pending;
            _pending = [];
            return drained;
        }
    }
}

/// <summary>Writes the placement log to the database, merging each worker's new records with those stored and keeping the newest.</summary>
public sealed class PlacementLogWriter(PlacementLog log, NpgsqlDataSource db, DatabaseState database, TimeProvider clock, ILogger<PlacementLogWriter> logger)
    : BackgroundService
{
    // Duplicates (the same job seen by two instances, or in two flushes) keep their newest record.
    private const string Merge = """
        insert into worker_placement (worker_id, decisions, updated_at)
        select worker_id, decisions::jsonb, @now from unnest(@workerIds, @decisions) as t(worker_id, decisions)
        on conflict (worker_id) do update set updated_at = excluded.updated_at, decisions = (
            select coalesce(jsonb_agg(e order by (e->>'at')::timestamptz), '[]'::jsonb) from (
                select e from (
                    select distinct on (e->>'placement') e
                    from jsonb_array_elements(worker_placement.decisions || excluded.decisions) as e
                    order by e->>'placement', (e->>'at')::timestamptz desc) d
                order by (e->>'at')::timestamptz desc limit @keep) k)
        """;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!database.Migrated)
                continue;
            var drained = log.Drain();
            if (drained.Count == 0)
                continue;
            try
            {
                await FlushAsync(drained, stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Explanations are advice, not state: a lost batch is replaced by the next placements.
                logger.LogWarning(ex, "Writing the placement log failed; {Workers} workers' latest placements are dropped", drained.Count);
            }
        }
    }

    public async Task FlushAsync(Dictionary<string, List<PlacementRecord>> records, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        // Sorted, so two instances flushing the same workers lock their rows in the same order.
        var workers = records.Keys.Order(StringComparer.Ordinal).ToArray();
        await connection.ExecuteAsync(new CommandDefinition(Merge, new
        {
            workerIds = workers,
            decisions = workers.Select(w => JsonSerializer.Serialize(records[w], PlatformJson.Options)).ToArray(),
            now = clock.GetUtcNow(),
            keep = log.Keep,
        }, cancellationToken: ct));
    }

    /// <summary>Writes what has been logged so far now, for tests and for a clean shutdown.</summary>
    public Task FlushNowAsync(CancellationToken ct) => log.Drain() is { Count: > 0 } drained ? FlushAsync(drained, ct) : Task.CompletedTask;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            if (database.Migrated)
                await FlushNowAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Writing the placement log at shutdown failed");
        }
    }
}
