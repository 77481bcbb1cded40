using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Storage.Blobs;

namespace Platform.Storage.Replication;

/// <summary>
/// Keeps Storage:ReplicaCount verified copies of every pin on live nodes. Nodes claim the copying of a pin
/// under a per-CID advisory lock, so however many nodes hear of a pin at once, only as many copy it as are
/// missing. Copies on nodes that stopped beating do not count, so a lost node's pins are copied elsewhere.
/// </summary>
public sealed class Replicator(NpgsqlDataSource db, BlobStore store, Peers peers, MessageOutbox outbox, IOptions<StorageOptions> options,
    TimeProvider clock, ILogger<Replicator> logger)
{
    // A claim whose node has not finished copying in this long is taken to be abandoned.
    private static readonly TimeSpan ClaimTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Copies <paramref name="cid"/> to this node if it is short of copies; true when this node copied it.</summary>
    public async Task<bool> ReplicateAsync(Cid cid, CancellationToken ct)
    {
        var o = options.Value;
        var now = clock.GetUtcNow();
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition("select pg_advisory_xact_lock(hashtext(@cid))", new { cid = cid.Value }, tx, cancellationToken: ct));
            var state = await connection.QuerySingleAsync<(bool Pinned, bool Mine, int Copies)>(new CommandDefinition(
                """
                select exists (select 1 from pins where cid = @cid) as Pinned,
                       exists (select 1 from replicas where cid = @cid and node_id = @self and status in ('ok', 'copying')) as Mine,
                       (select count(*) from replicas r join storage_nodes n on n.node_id = r.node_id
                        where r.cid = @cid and n.last_seen_at > @alive
                          and (r.status = 'ok' or (r.status = 'copying' and r.verified_at > @claimedSince)))::int as Copies
                """,
                new { cid = cid.Value, self = o.NodeId, alive = now - (3 * o.HeartbeatInterval), claimedSince = now - ClaimTimeout }, tx, cancellationToken: ct));
            if (!state.Pinned || state.Mine || state.Copies >= o.ReplicaCount)
                return false;
            await connection.ExecuteAsync(new CommandDefinition(
                """
                insert into replicas (cid, node_id, status, verified_at) values (@cid, @self, 'copying', @now)
                on conflict (cid, node_id) do update set status = 'copying', verified_at = @now
                """, new { cid = cid.Value, self = o.NodeId, now }, tx, cancellationToken: ct));
            await tx.CommitAsync(ct);
        }

        var from = await peers.CopyFromPeerAsync(store, cid, overwrite: true, ct);
        if (from is null)
        {
            logger.LogWarning("No peer could send {Cid}; it stays short of copies until the next sweep", cid);
            await using var connection = await db.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "delete from replicas where cid = @cid and node_id = @self and status = 'copying'", new { cid = cid.Value, self = o.NodeId }, cancellationToken: ct));
            return false;
        }
        await MarkHeldAsync(cid, copies => new BlobReplicated { Cid = cid, NodeId = o.NodeId, Replicas = copies, OccurredAt = clock.GetUtcNow() }, ct);
        logger.LogInformation("Copied {Cid} from {Peer}", cid, from);
        return true;
    }

    /// <summary>
    /// Replaces this node's missing or corrupt copy with a verified one from a peer; false when no peer
    /// could send one (the copy stays marked lost, and the next scrub tries again).
    /// </summary>
    public async Task<bool> RepairAsync(Cid cid, CopyState problem, CancellationToken ct)
    {
        var o = options.Value;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update replicas set status = 'lost' where cid = @cid and node_id = @self", new { cid = cid.Value, self = o.NodeId }, cancellationToken: ct));
        }
        var from = await peers.CopyFromPeerAsync(store, cid, overwrite: true, ct);
        if (from is null)
        {
            logger.LogError("Copy of {Cid} is {Problem} and no peer could send a good one", cid, problem);
            return false;
        }
        await MarkHeldAsync(cid, _ => new BlobRepaired
        {
            Cid = cid,
            NodeId = o.NodeId,
            Problem = problem == CopyState.Missing ? "missing" : "corrupt",
            FromNodeId = from,
            OccurredAt = clock.GetUtcNow(),
        }, ct);
        logger.LogWarning("Repaired {Problem} copy of {Cid} from {Peer}", problem, cid, from);
        return true;
    }

    /// <summary>Records this node's verified copy and announces it; <paramref name="message"/> gets the pin's count of verified copies.</summary>
    private async Task MarkHeldAsync<T>(Cid cid, Func<int, T> message, CancellationToken ct) where T : class
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into replicas (cid, node_id, status, verified_at) values (@cid, @self, 'ok', @now)
            on conflict (cid, node_id) do update set status = 'ok', verified_at = @now, repair_failures = 0, retry_at = null
            """, new { cid = cid.Value, self = options.Value.NodeId, now = clock.GetUtcNow() }, tx, cancellationToken: ct));
        var copies = await connection.ExecuteScalarAsync<int>(new CommandDefinition(
            "select count(*)::int from replicas where cid = @cid and status = 'ok'", new { cid = cid.Value }, tx, cancellationToken: ct));
        await outbox.EnqueueAsync(tx, message(copies), ct: ct);
        await outbox.CommitAsync(tx, ct);
    }
}

/// <summary>Every node hears of every pin (each has its own queue) and copies it if copies are short.</summary>
public sealed class BlobPinnedConsumer(Replicator replicator, IOptions<StorageOptions> options) : IConsumer<BlobPinned>
{
    public async Task Consume(ConsumeContext<BlobPinned> context)
    {
        if (context.Message.NodeId == options.Value.NodeId)
            return;
        await replicator.ReplicateAsync(context.Message.Cid, context.CancellationToken);
    }
}
