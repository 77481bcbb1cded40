using System.Text.Json;
using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Workers;

/// <summary>The registry: the latest WorkerOnline wins; heartbeats only ever move last_seen_at forward.</summary>
public sealed class WorkerOnlineConsumer(NpgsqlDataSource db, Dispatcher dispatcher) : IConsumer<WorkerOnline>
{
    public async Task Consume(ConsumeContext<WorkerOnline> context)
    {
        var w = context.Message;
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into workers (id, operator_account_id, region, slots, kernels, devices, gflops, power_watts, public_key, online, last_seen_at)
            values (@Id, @Operator, @Region, @Slots, @Kernels, @Devices::jsonb, @Gflops::jsonb, @PowerWatts, @PublicKey, true, @OccurredAt)
            on conflict (id) do update set operator_account_id = excluded.operator_account_id, region = excluded.region,
                slots = excluded.slots, kernels = excluded.kernels, devices = excluded.devices, gflops = excluded.gflops,
                power_watts = excluded.power_watts, public_key = excluded.public_key, online = true,
                last_seen_at = greatest(workers.last_seen_at, excluded.last_seen_at)
            """,
            new
            {
                Id = w.WorkerId.Value,
                Operator = w.OperatorAccountId.Value,
                w.Region,
                w.Slots,
                Kernels = w.Kernels.ToArray(),
                Devices = JsonSerializer.Serialize(w.Devices, JobStore.Json),
                Gflops = JsonSerializer.Serialize(w.GflopsPerKernel, JobStore.Json),
                w.PowerWatts,
                w.PublicKey,
                w.OccurredAt,
            }, cancellationToken: context.CancellationToken));
        dispatcher.Poke();
    }
}

public sealed class WorkerHeartbeatConsumer(NpgsqlDataSource db, Dispatcher dispatcher) : IConsumer<WorkerHeartbeat>
{
    public async Task Consume(ConsumeContext<WorkerHeartbeat> context)
    {
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "update workers set last_seen_at = @OccurredAt, online = true where id = @Id and last_seen_at < @OccurredAt",
            new { Id = context.Message.WorkerId.Value, context.Message.OccurredAt }, cancellationToken: context.CancellationToken));
        if (updated == 1)
            dispatcher.Poke();
    }
}

public sealed class WorkerOfflineConsumer(NpgsqlDataSource db) : IConsumer<WorkerOffline>
{
    public async Task Consume(ConsumeContext<WorkerOffline> context)
    {
        await using var connection = await db.OpenConnectionAsync(context.CancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "update workers set online = false where id = @Id and last_seen_at <= @OccurredAt",
            new { Id = context.Message.WorkerId.Value, context.Message.OccurredAt }, cancellationToken: context.CancellationToken));
    }
}
