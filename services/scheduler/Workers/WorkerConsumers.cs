using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Workers;

/// <summary>
/// The registry: the latest WorkerOnline wins; last_seen_at is the scheduler's own clock when it heard the worker,
/// never the node's (see <see cref="WorkerHeartbeatConsumer"/>). A worker's identity key and operator are the ones
/// its operator registered (node_registrations, POST /v1/nodes): a WorkerOnline for an unregistered id or with
/// another key is dropped and counted, and the operator it names is ignored, so no node can take over another's
/// id or pose as another operator's.
/// </summary>
public sealed class WorkerOnlineConsumer(NpgsqlDataSource db, Dispatcher dispatcher, TimeProvider clock, ILogger<WorkerOnlineConsumer> logger) : IConsumer<WorkerOnline>
{
    public async Task Consume(ConsumeContext<WorkerOnline> context)
    {
        var w = context.Message;
        // Proof of possession: the announcement is signed with the key it announces, so nobody registers a key
        // they do not hold (the first key a worker id registers is then the only one it ever signs with).
        if (!WorkerMessageSignature.Verify(w.PublicKey, w.Signature, WorkerMessageSignature.Payload(w)))
        {
            logger.LogWarning("Worker {WorkerId} announced itself without a valid signature by the key it announces; ignored", w.WorkerId);
            return;
        }
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        if (await RegisteredKeys.RegistrationOfAsync(connection, w.WorkerId, logger, nameof(WorkerOnline), context.CancellationToken) is not { } registration)
            return;
        if (!RegisteredKeys.SameKey(registration.PublicKey, w.PublicKey))
        {
            logger.LogWarning("Worker {WorkerId} announced itself with a key other than the one its operator registered; dropped", w.WorkerId);
            await RejectedNodeMessages.CountAsync(connection, RejectedNodeMessages.KeyMismatch, context.CancellationToken);
            return;
        }
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into workers (id, operator_account_id, region, slots, kernels, devices, gflops, power_watts, public_key, online, last_seen_at,
                                 memory_mb, device_kinds, backends, backend_rates, power_measured, notes, node_clock_at, kernel_revision)
            values (@Id, @Operator, @Region, @Slots, @Kernels, @Devices::jsonb, @Gflops::jsonb, @PowerWatts, @PublicKey, true, @Now,
                    @MemoryMb, @DeviceKinds, @Backends::jsonb, @BackendRates::jsonb, @PowerMeasured, @Notes, @OccurredAt, @KernelRevision)
            on conflict (id) do update set operator_account_id = excluded.operator_account_id, region = excluded.region,
                slots = excluded.slots, kernels = excluded.kernels, devices = excluded.devices, gflops = excluded.gflops,
                memory_mb = excluded.memory_mb, device_kinds = excluded.device_kinds,
                backends = excluded.backends, backend_rates = excluded.backend_rates, power_measured = excluded.power_measured, notes = excluded.notes,
                power_watts = excluded.power_watts, public_key = excluded.public_key, online = true,
                last_seen_at = greatest(workers.last_seen_at, excluded.last_seen_at),
                node_clock_at = excluded.node_clock_at, offline_node_at = null, kernel_revision = excluded.kernel_revision
            """,
            new
            {
                Id = w.WorkerId.Value,
                Operator = registration.OperatorAccountId,
                w.Region,
                w.Slots,
                Kernels = w.Kernels.ToArray(),
                Devices = JsonSerializer.Serialize(w.Devices, PlatformJson.Options),
                Gflops = JsonSerializer.Serialize(w.GflopsPerKernel, PlatformJson.Options),
                w.PowerWatts,
                registration.PublicKey,
                w.OccurredAt,
                Now = clock.GetUtcNow(),
                MemoryMb = w.Devices.Count == 0 ? 0 : w.Devices.Max(d => d.MemoryMb),
                DeviceKinds = w.Devices.Select(d => d.Kind).Distinct().DefaultIfEmpty("cpu").ToArray(),
                Backends = JsonSerializer.Serialize(w.BackendPerKernel ?? new Dictionary<string, string>(), PlatformJson.Options),
                BackendRates = JsonSerializer.Serialize(w.GflopsPerBackend ?? new Dictionary<string, IReadOnlyDictionary<string, double>>(), PlatformJson.Options),
                w.PowerMeasured,
                Notes = (w.Notes ?? []).ToArray(),
                // Only a stricter comparison for the node's own results (see ResultComparer); a revision below the
                // first reproducible one means nothing and is kept as none.
                KernelRevision = w.KernelRevision is >= KernelArithmetic.Reproducible ? w.KernelRevision : null,
            }, cancellationToken: context.CancellationToken));
        dispatcher.Poke();
    }
}

/// <summary>Operators' stakes, newest version wins; a stake that reaches the minimum lets its workers take work.</summary>
public sealed class StakeChangedConsumer(NpgsqlDataSource db, Dispatcher dispatcher) : IConsumer<StakeChanged>
{
    public async Task Consume(ConsumeContext<StakeChanged> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        var changed = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into operator_stakes (operator_account_id, staked, version) values (@Operator, @Staked, @Version)
            on conflict (operator_account_id) do update set staked = excluded.staked, version = excluded.version
            where operator_stakes.version < excluded.version
            """, new { Operator = m.OperatorAccountId.Value, m.Staked, m.Version }, cancellationToken: context.CancellationToken));
        if (changed == 1)
            dispatcher.Poke();
    }
}

/// <summary>
/// A beat keeps the worker online and renews the leases of the attempts it says it is running. A worker back
/// from silence (offline for new work, but within the grace period nothing of its was taken) is online again and
/// its attempts simply continue. The beat's two updates share a transaction, so the lease monitor sees both or
/// neither.
/// A worker is seen when the scheduler hears it, by the scheduler's clock: a node whose clock runs a day ahead
/// cannot stay alive while silent, and one whose clock runs behind does not look dead. The node's OccurredAt
/// only orders its own messages (one clock, however wrong, is consistent with itself): a beat sent before the
/// worker's WorkerOffline but delivered after it does not bring the worker back.
/// </summary>
public sealed class WorkerHeartbeatConsumer(NpgsqlDataSource db, Dispatcher dispatcher, IOptions<SchedulerOptions> options, TimeProvider clock,
    ILogger<WorkerHeartbeatConsumer> logger) : IConsumer<WorkerHeartbeat>
{
    private sealed record Before(bool Online, DateTime LastSeenAt);

    public async Task Consume(ConsumeContext<WorkerHeartbeat> context)
    {
        var beat = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        if (!await RegisteredKeys.VerifyAsync(connection, beat.WorkerId, key => WorkerMessageSignature.Verify(key, beat.Signature, WorkerMessageSignature.Payload(beat)), logger, nameof(WorkerHeartbeat), ct))
            return;
        await using var tx = await connection.BeginTransactionAsync(ct);
        var now = clock.GetUtcNow();
        var renewed = 0;
        var unitsPerSlot = options.Value.TinyJobsPerSlot;
        if (beat.Attempts.Count > 0 || unitsPerSlot > 1)
        {
            // A beat renews the attempts the node lists (those it runs) and the tiny ones the scheduler gave it that
            // still wait for it: many share a slot, so they queue in the node's broker queue, where the node cannot see
            // them yet. A job that takes a whole slot waits there at most behind a few tiny ones: unlisted, it was
            // lost. The held jobs are locked in id order, as every batch of results locks them: a beat listing many
            // attempts never waits in a cycle with a batch completing some of them.
            renewed = await connection.ExecuteAsync(new CommandDefinition(
                """
                update jobs j set lease_deadline = greatest(j.lease_deadline, @deadline)
                from (select id from jobs where worker_id = @Id and status in ('assigned', 'running')
                        and (attempt_id = any(@Attempts) or (status = 'assigned' and slot_units < @unitsPerSlot))
                      order by id for update) held
                where j.id = held.id
                """,
                new { Id = beat.WorkerId.Value, Attempts = beat.Attempts.Select(a => a.Value).ToArray(), deadline = now + options.Value.LeaseDuration, unitsPerSlot },
                tx, cancellationToken: ct));
        }
        var before = await connection.QuerySingleOrDefaultAsync<Before>(new CommandDefinition(
            """
            update workers w set last_seen_at = greatest(old.last_seen_at, @now), online = true,
                node_clock_at = greatest(old.node_clock_at, @OccurredAt)
            from (select id, online, last_seen_at, node_clock_at, offline_node_at from workers where id = @Id for update) old
            where w.id = old.id and (old.offline_node_at is null or old.offline_node_at < @OccurredAt)
            returning old.online as Online, old.last_seen_at as LastSeenAt
            """,
            new { Id = beat.WorkerId.Value, beat.OccurredAt, now }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        if (before is { Online: false })
        {
            logger.LogWarning("Worker {WorkerId} is back after {Silence} of silence: online again, {Renewed} attempt(s) renewed and continuing",
                beat.WorkerId, JobReasons.Duration(now - new DateTimeOffset(DateTime.SpecifyKind(before.LastSeenAt, DateTimeKind.Utc))), renewed);
        }
        if (before is not null)
            dispatcher.Poke();
    }
}

/// <summary>
/// A worker going away. Applied only when it is the node's newest word (by the node's own clock, which orders
/// its own messages): a WorkerOffline of an earlier run delivered after the worker announced itself again is ignored.
/// </summary>
public sealed class WorkerOfflineConsumer(NpgsqlDataSource db, ILogger<WorkerOfflineConsumer> logger) : IConsumer<WorkerOffline>
{
    public async Task Consume(ConsumeContext<WorkerOffline> context)
    {
        var m = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        if (!await RegisteredKeys.VerifyAsync(connection, m.WorkerId, key => WorkerMessageSignature.Verify(key, m.Signature, WorkerMessageSignature.Payload(m)), logger, nameof(WorkerOffline), context.CancellationToken))
            return;
        await connection.ExecuteAsync(new CommandDefinition(
            "update workers set online = false, offline_node_at = @OccurredAt where id = @Id and (node_clock_at is null or node_clock_at <= @OccurredAt)",
            new { Id = context.Message.WorkerId.Value, context.Message.OccurredAt }, cancellationToken: context.CancellationToken));
    }
}

/// <summary>
/// A worker's registration (node_registrations): the key its messages must be signed with and the operator it works
/// for. Messages of unregistered workers or with other keys are dropped and counted.
/// </summary>
internal static class RegisteredKeys
{
    public sealed record Registration(string OperatorAccountId, string PublicKey);

    public static async Task<Registration?> RegistrationOfAsync(NpgsqlConnection connection, WorkerId worker, ILogger logger, string message, CancellationToken ct)
    {
        var registered = await connection.QuerySingleOrDefaultAsync<Registration>(new CommandDefinition(
            "select operator_account_id as OperatorAccountId, public_key as PublicKey from node_registrations where worker_id = @Id",
            new { Id = worker.Value }, cancellationToken: ct));
        if (registered is null)
        {
            logger.LogWarning("{Message} of worker {WorkerId} dropped: no operator registered the worker", message, worker);
            await RejectedNodeMessages.CountAsync(connection, RejectedNodeMessages.UnregisteredWorker, ct);
        }
        return registered;
    }

    public static async Task<bool> VerifyAsync(NpgsqlConnection connection, WorkerId worker, Func<string?, bool> verify, ILogger logger, string message, CancellationToken ct)
    {
        if (await RegistrationOfAsync(connection, worker, logger, message, ct) is not { } registered)
            return false;
        if (verify(registered.PublicKey))
            return true;
        logger.LogWarning("{Message} of worker {WorkerId} dropped: not signed with the key the worker registered", message, worker);
        await RejectedNodeMessages.CountAsync(connection, RejectedNodeMessages.KeyMismatch, ct);
        return false;
    }

    /// <summary>The same P-256 key, however its base64 is spelled (registrations keep one spelling).</summary>
    public static bool SameKey(string registered, string? announced) =>
        announced is not null && ResultSignature.ImportPublicKey(announced) is { } key && ResultSignature.ExportPublicKey(key) == registered;
}
