using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Storage.Blobs;

namespace Platform.Storage.Replication;

/// <summary>
/// The node's background care of its copies: re-hashes each copy every Storage:ScrubPeriod at no more than
/// Storage:ScrubBytesPerSecond, repairs missing or corrupt copies from peers (and copies a read found damaged
/// straight away), and copies pins that are short of replicas. A copy no peer can repair is retried with
/// exponential backoff, and copies are taken in the order they fell due, so one such copy never starves the rest.
/// </summary>
public sealed class Scrubber(NpgsqlDataSource db, BlobStore store, Replicator replicator, IOptions<StorageOptions> options, TimeProvider clock,
    ILogger<Scrubber> logger) : BackgroundService
{
    private readonly SemaphoreSlim _poked = new(0);

    /// <summary>Wakes the scrubber now: a read found this node's copy damaged.</summary>
    public void Poke()
    {
        if (_poked.CurrentCount == 0)
            _poked.Release();
    }

    private sealed record Due(string Cid, long Size, byte[]? Leaves, string Status);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var lastSweep = DateTimeOffset.MinValue;
        while (!stoppingToken.IsCancellationRequested)
        {
            long scrubbed = 0;
            try
            {
                if (clock.GetUtcNow() - lastSweep >= o.HeartbeatInterval)
                {
                    lastSweep = clock.GetUtcNow();
                    await CopyUnderReplicatedAsync(stoppingToken);
                }
                scrubbed = await ScrubNextAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Scrub pass failed; retrying");
            }
            // Pace the re-hashing to the configured rate, and idle until the next sweep when nothing is due.
            var pause = scrubbed > 0 ? TimeSpan.FromSeconds((double)scrubbed / o.ScrubBytesPerSecond) : o.HeartbeatInterval;
            await _poked.WaitAsync(pause, stoppingToken);
        }
    }

    /// <summary>Checks (or repairs) the copy that is most overdue; returns the bytes it read.</summary>
    private async Task<long> ScrubNextAsync(CancellationToken ct)
    {
        var o = options.Value;
        Due? due;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            // Fair order: whichever copy has been due longest goes first, a lost copy's retry included, so a copy that
            // cannot be repaired (its retry backing off) never keeps the scrubber from the rest.
            due = await connection.QuerySingleOrDefaultAsync<Due>(new CommandDefinition(
                """
                select r.cid, p.size, p.leaves, r.status from replicas r join pins p on p.cid = r.cid
                where r.node_id = @self and ((r.status = 'lost' and coalesce(r.retry_at, r.verified_at) <= @now) or (r.status = 'ok' and r.verified_at <= @dueBefore))
                order by case when r.status = 'lost' then coalesce(r.retry_at, r.verified_at) else r.verified_at + @period end limit 1
                """, new { self = o.NodeId, now = clock.GetUtcNow(), dueBefore = clock.GetUtcNow() - o.ScrubPeriod, period = o.ScrubPeriod }, cancellationToken: ct));
        }
        if (due is null)
            return 0;
        var cid = Cid.Parse(due.Cid);
        var leaves = due.Leaves ?? await store.ComputeLeavesAsync(cid, ct);
        // A lost copy is checked again too: an upload of the same bytes may have replaced it since it was marked.
        var state = leaves is null ? CopyState.Corrupt : await store.CheckAsync(cid, due.Size, leaves, ct);
        if (state == CopyState.Ok)
        {
            await using var connection = await db.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "update replicas set status = 'ok', verified_at = @now, repair_failures = 0, retry_at = null where cid = @cid and node_id = @self",
                new { now = clock.GetUtcNow(), cid = due.Cid, self = o.NodeId }, cancellationToken: ct));
            if (due.Leaves is null)
                await connection.ExecuteAsync(new CommandDefinition(
                    "update pins set leaves = @leaves, merkle_root = @root where cid = @cid and leaves is null",
                    new { leaves, root = Contracts.Merkle.MerkleTree.Root(BlobStore.Split(leaves!)), cid = due.Cid }, cancellationToken: ct));
        }
        else
        {
            logger.LogWarning("Scrub found this node's copy of {Cid} {State}", cid, state);
            if (!await replicator.RepairAsync(cid, await store.Backend.SizeAsync(cid, ct) is null ? CopyState.Missing : state, ct))
            {
                // Nothing to copy from yet: try again after a wait that doubles with each failure in a row (from one
                // heartbeat up to Storage:RepairRetryMax), rather than spinning on it.
                await using var connection = await db.OpenConnectionAsync(ct);
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    update replicas set status = 'lost', repair_failures = repair_failures + 1,
                        retry_at = @now + least(@first * power(2, least(repair_failures, 30)), @max) * interval '1 second'
                    where cid = @cid and node_id = @self and status = 'lost'
                    """,
                    new { now = clock.GetUtcNow(), first = o.HeartbeatInterval.TotalSeconds, max = o.RepairRetryMax.TotalSeconds, cid = due.Cid, self = o.NodeId },
                    cancellationToken: ct));
            }
        }
        return Math.Max(due.Size, 1);
    }

    private async Task CopyUnderReplicatedAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = clock.GetUtcNow();
        IEnumerable<string> shortOfCopies;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            shortOfCopies = await connection.QueryAsync<string>(new CommandDefinition(
                """
                select p.cid from pins p
                where not exists (select 1 from replicas mine where mine.cid = p.cid and mine.node_id = @self)
                  and (select count(*) from replicas r join storage_nodes n on n.node_id = r.node_id
                       where r.cid = p.cid and r.status = 'ok' and n.last_seen_at > @alive) < @target
                order by p.pinned_at limit 20
                """, new { self = o.NodeId, alive = now - (3 * o.HeartbeatInterval), target = o.ReplicaCount }, cancellationToken: ct));
        }
        foreach (var cid in shortOfCopies)
            await replicator.ReplicateAsync(Cid.Parse(cid), ct);
    }
}
