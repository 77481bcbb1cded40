using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;

namespace Platform.Scheduler.Nodes;

/// <summary>
/// The one door from nodes into the network: the receive endpoint <see cref="NodeNames.Intake"/> carries the
/// consumers of every node-to-network message. Each node sends only to its own exchange <c>node-&lt;id&gt;</c>, which
/// enrollment binds into the intake. The message-type exchanges the services publish to (and tests) are bound too,
/// except AttemptProgressed's, which the scheduler itself publishes once it has checked a node's.
/// </summary>
public static class NodeIntake
{
    /// <summary>Puts a consumer on the intake endpoint rather than an endpoint of its own.</summary>
    public static void OnIntake(IEndpointRegistrationConfigurator endpoint) => endpoint.Name = NodeNames.Intake;

    public static IBusRegistrationConfigurator AddNodeIntake(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<AttemptProgressedRelay>().Endpoint(OnIntake);
        bus.AddConfigureEndpointsCallback((context, name, endpoint) =>
        {
            if (name != NodeNames.Intake)
                return;
            endpoint.UseConsumeFilter(typeof(NodeExchangeFilter<>), context);
            // On RabbitMQ the intake is bound by hand: not to AttemptProgressed's exchange, where the relay
            // publishes (the in-memory test bus keeps its automatic topology, and the relay's header stops the echo).
            if (endpoint is not IRabbitMqReceiveEndpointConfigurator rabbit)
                return;
            rabbit.ConfigureConsumeTopology = false;
            rabbit.Bind<WorkerOnline>();
            rabbit.Bind<WorkerHeartbeat>();
            rabbit.Bind<WorkerOffline>();
            rabbit.Bind<AttemptStarted>();
            rabbit.Bind<AttemptCompleted>();
            rabbit.Bind<AttemptFailed>();
        });
        return bus;
    }

    /// <summary>The worker a node-to-network message speaks for; null for any other message.</summary>
    internal static WorkerId? SpeaksFor(object message) => message switch
    {
        WorkerOnline m => m.WorkerId,
        WorkerHeartbeat m => m.WorkerId,
        WorkerOffline m => m.WorkerId,
        AttemptStarted m => m.WorkerId,
        AttemptCompleted m => m.WorkerId,
        AttemptFailed m => m.WorkerId,
        AttemptProgressed m => m.WorkerId,
        _ => null,
    };
}

/// <summary>
/// A message that came through node X's exchange speaks for worker X or is dropped: a node may not speak for
/// another (its heartbeats, its failures), signed or not. Messages from the services' exchanges pass. A batch
/// (<see cref="Batch{T}"/>) passes whole: each of its messages came through an exchange of its own, and the batch
/// consumer keeps only those that may speak (<see cref="NodeExchanges.KeepOwnAsync{T}"/>).
/// </summary>
public sealed class NodeExchangeFilter<T>(NpgsqlDataSource db, ILogger<NodeExchangeFilter<T>> logger) : IFilter<ConsumeContext<T>> where T : class
{
    private static readonly bool IsBatch = typeof(T).IsGenericType && typeof(T).GetGenericTypeDefinition() == typeof(Batch<>);

    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        if (!IsBatch && await NodeExchanges.DroppedAsync(context, context.Message, db, logger, context.CancellationToken))
            return;
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("nodeExchange");
}

/// <summary>Which exchange a node-to-network message came through, and whether it may speak for its worker from there.</summary>
public static class NodeExchanges
{
    /// <summary>True, having logged and counted it, when the message came through another node's exchange than its worker's.</summary>
    public static async Task<bool> DroppedAsync(ConsumeContext context, object message, NpgsqlDataSource db, ILogger logger, CancellationToken ct)
    {
        if (!context.TryGetPayload<RabbitMqBasicConsumeContext>(out var d)
            || NodeNames.WorkerOfExchange(d.Exchange) is not { } node
            || NodeIntake.SpeaksFor(message)?.Value == node)
            return false;
        logger.LogWarning("{Message} for worker {WorkerId} came through exchange {Exchange}: a node speaks only for itself; dropped",
            message.GetType().Name, NodeIntake.SpeaksFor(message), d.Exchange);
        await RejectedNodeMessages.CountAsync(db, RejectedNodeMessages.WrongExchange, ct);
        return true;
    }

    /// <summary>The messages of a batch that may speak for their workers (<see cref="NodeExchangeFilter{T}"/>); the rest are dropped.</summary>
    public static async Task<List<T>> KeepOwnAsync<T>(Batch<T> batch, NpgsqlDataSource db, ILogger logger, CancellationToken ct) where T : class
    {
        var kept = new List<T>(batch.Length);
        foreach (var context in batch)
        {
            if (!await DroppedAsync(context, context.Message, db, logger, ct))
                kept.Add(context.Message);
        }
        return kept;
    }
}

/// <summary>Counts what the intake dropped, by reason; <c>GET /v1/network</c> shows the counts.</summary>
public static class RejectedNodeMessages
{
    public const string UnregisteredWorker = "unregistered_worker";
    public const string KeyMismatch = "key_mismatch";
    public const string WrongExchange = "wrong_exchange";

    public static async Task CountAsync(NpgsqlDataSource db, string reason, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await CountAsync(connection, reason, ct);
    }

    public static Task CountAsync(NpgsqlConnection connection, string reason, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            insert into rejected_node_messages (reason, count, last_at) values (@reason, 1, now())
            on conflict (reason) do update set count = rejected_node_messages.count + 1, last_at = now()
            """, new { reason }, cancellationToken: ct));

    public static async Task<Dictionary<string, long>> ReadAsync(NpgsqlConnection connection, CancellationToken ct) =>
        (await connection.QueryAsync<(string, long)>(new CommandDefinition(
            "select reason, count from rejected_node_messages order by reason", cancellationToken: ct))).ToDictionary(r => r.Item1, r => r.Item2);
}

/// <summary>
/// Progress reports drive the job view in the gateway. The gateway no longer hears nodes: the scheduler passes on
/// a report once it is signed with the registered key of the worker that holds the attempt.
/// </summary>
public sealed class AttemptProgressedRelay(NpgsqlDataSource db, ILogger<AttemptProgressedRelay> logger) : IConsumer<AttemptProgressed>
{
    public const string RelayedHeader = "Platform-Relayed-By";

    public async Task Consume(ConsumeContext<AttemptProgressed> context)
    {
        // Our own relay, heard again on the in-memory test bus (on RabbitMQ the intake is not bound to it).
        if (context.Headers.TryGetHeader(RelayedHeader, out _))
            return;
        var m = context.Message;
        var ct = context.CancellationToken;
        await using var connection = await db.OpenConnectionAsync(ct);
        var key = await connection.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            """
            select r.public_key from jobs j join node_registrations r on r.worker_id = j.worker_id
            where j.id = @JobId and j.attempt_id = @AttemptId and j.worker_id = @WorkerId and j.status in ('assigned', 'running')
            """, new { JobId = m.JobId.Value, AttemptId = m.AttemptId.Value, WorkerId = m.WorkerId.Value }, cancellationToken: ct));
        if (key is null)
            return; // a late report of an attempt that ended, or not the worker's: nothing to show
        if (!WorkerMessageSignature.Verify(key, m.Signature, WorkerMessageSignature.Payload(m)))
        {
            logger.LogWarning("Job {JobId}: progress of attempt {AttemptId} dropped: not signed with the key worker {WorkerId} registered", m.JobId, m.AttemptId, m.WorkerId);
            await RejectedNodeMessages.CountAsync(connection, RejectedNodeMessages.KeyMismatch, ct);
            return;
        }
        await context.Publish(m, p => p.Headers.Set(RelayedHeader, "scheduler"), ct);
    }
}
