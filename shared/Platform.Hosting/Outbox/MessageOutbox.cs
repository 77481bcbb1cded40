using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Hosting.Tracing;

namespace Platform.Hosting.Outbox;

/// <summary>
/// Writes messages into the outbox table inside the caller's transaction; <see cref="OutboxRelay"/> publishes
/// them after commit. This is how every state change that publishes stays atomic with its message.
/// Committed through <see cref="CommitAsync"/>, a transaction's messages go to the relay straight from memory:
/// no second transaction reads them back and no JSON is parsed again. The row stays the durable copy until the
/// broker has confirmed the message.
/// </summary>
public sealed class MessageOutbox(IOptions<OutboxOptions> options)
{
    /// <summary>A message written in a transaction not yet committed, as the relay will send it.</summary>
    internal sealed record Pending(long Id, Guid MessageId, object Message, Type Type, string? Destination, string? TraceParent);

    // The messages written in each open transaction. Weak keys: a transaction rolled back or committed some other
    // way takes its list with it, and its rows (if committed) are polled once their claim passes. Npgsql reuses a
    // connection's transaction object, so a list can outlive its transaction and be handed over with a later one:
    // the relay therefore sends only rows it finds committed and unsent (a rolled-back row does not exist).
    private readonly ConditionalWeakTable<NpgsqlTransaction, List<Pending>> _open = new();

    // What to do once a transaction has committed (metrics). Kept by connection, not by transaction: Npgsql recycles a
    // connection's transaction object, and a rolled-back transaction's actions must not run at an unrelated later
    // commit; a connection object is new for every OpenConnectionAsync and takes a rolled-back list with it.
    private readonly ConditionalWeakTable<NpgsqlConnection, List<Action>> _afterCommit = new();
    private readonly SemaphoreSlim _pending = new(0, 1);

    // Bounded: when the relay falls behind, commits do not wait for it; what does not fit is left to the poll (after
    // its memory claim). Room for a few job arrays of 10,000 at once.
    private readonly Channel<Pending> _committed = Channel.CreateBounded<Pending>(
        new BoundedChannelOptions(50_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    private long _sentFromMemory;
    private long _sentByPoll;
    private long _deleted;

    /// <summary>What the relay has done since start: for tests and operators, the proof of which path sent what.</summary>
    public OutboxCounts Counts => new(Interlocked.Read(ref _sentFromMemory), Interlocked.Read(ref _sentByPoll), Interlocked.Read(ref _deleted));

    /// <summary>Queue a message to publish (or, with <paramref name="sendTo"/>, to send to that queue).</summary>
    public Task EnqueueAsync<T>(NpgsqlTransaction transaction, T message, string? sendTo = null, CancellationToken ct = default) where T : class =>
        EnqueueManyAsync(transaction, [message], sendTo, ct);

    /// <summary>
    /// Queue many messages with one statement (a job array's thousands of JobSubmitted): one path for one message and
    /// for many.
    /// </summary>
    public async Task EnqueueManyAsync<T>(NpgsqlTransaction transaction, IReadOnlyList<T> messages, string? sendTo = null, CancellationToken ct = default)
        where T : class
    {
        if (messages.Count == 0)
            return;
        var staged = Stage(transaction, [.. messages.Select(m => new Outgoing(m, sendTo))]);
        await using var batch = new NpgsqlBatch(transaction.Connection, transaction) { BatchCommands = { staged.Command } };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        await staged.ReadAsync(reader, ct);
    }

    /// <summary>A message to queue: published, or with <see cref="SendTo"/> sent to that queue.</summary>
    public sealed record Outgoing(object Message, string? SendTo = null);

    /// <summary>
    /// The statement that queues <paramref name="messages"/>, for a caller to run in one round trip with its own
    /// statements (an <see cref="NpgsqlBatch"/> in <paramref name="transaction"/>); the messages are the transaction's
    /// once <see cref="StagedMessages.ReadAsync"/> has read the statement's rows.
    /// </summary>
    public StagedMessages Stage(NpgsqlTransaction transaction, IReadOnlyList<Outgoing> messages)
    {
        var types = new Type[messages.Count];
        var typeNames = new string[messages.Count];
        var messageIds = new Guid[messages.Count];
        var destinations = new string?[messages.Count];
        var bodies = new string[messages.Count];
        var traceParents = new string?[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var type = messages[i].Message.GetType();
            // The relay resolves types from the contracts assembly: anything else could never be sent.
            if (type.Assembly != typeof(Contracts.Messages.JobSubmitted).Assembly)
                throw new ArgumentException($"{type.FullName} is not a Platform.Contracts message; the outbox can only send those", nameof(messages));
            types[i] = type;
            typeNames[i] = type.FullName!;
            messageIds[i] = Guid.NewGuid();
            destinations[i] = messages[i].SendTo;
            bodies[i] = JsonSerializer.Serialize(messages[i].Message, type, PlatformJson.Options);
            traceParents[i] = JobTraces.TraceParentOf(messages[i].Message);
        }
        var command = new NpgsqlBatchCommand(
            """
            insert into outbox (message_id, message_type, destination, body, relay_after, trace_parent)
            select m.message_id, m.message_type, m.destination, m.body::jsonb, now() + @Claim, m.trace_parent
            from unnest(@MessageIds, @MessageTypes, @Destinations, @Bodies, @TraceParents) as m (message_id, message_type, destination, body, trace_parent)
            returning id, message_id
            """)
        {
            Parameters =
            {
                new("MessageIds", messageIds),
                new("MessageTypes", typeNames),
                new("Destinations", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { Value = destinations },
                new("Bodies", bodies),
                new("TraceParents", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { Value = traceParents },
                new("Claim", options.Value.MemoryClaim),
            },
        };
        return new StagedMessages(command, async (reader, ct) =>
        {
            // Rows come back in no promised order: each is matched to its message by message id.
            var idOf = new Dictionary<Guid, long>(messages.Count);
            while (await reader.ReadAsync(ct))
                idOf[reader.GetGuid(1)] = reader.GetInt64(0);
            var open = _open.GetOrCreateValue(transaction);
            for (var i = 0; i < messages.Count; i++)
                open.Add(new Pending(idOf[messageIds[i]], messageIds[i], messages[i].Message, types[i], destinations[i], traceParents[i]));
        });
    }

    /// <summary>
    /// Runs <paramref name="action"/> once <paramref name="transaction"/> has committed through <see cref="CommitAsync"/>:
    /// what counts an effect (a metric) counts it only if it took effect, and once however often a batch is retried.
    /// </summary>
    public void AfterCommit(NpgsqlTransaction transaction, Action action) => _afterCommit.GetOrCreateValue(transaction.Connection!).Add(action);

    /// <summary>
    /// Commits and hands the transaction's messages to the relay, so they leave at once; wakes the poll instead
    /// when the transaction wrote outbox rows only by SQL.
    /// </summary>
    public async Task CommitAsync(NpgsqlTransaction transaction, CancellationToken ct = default)
    {
        _open.TryGetValue(transaction, out var written);
        _open.Remove(transaction);
        var connection = transaction.Connection!;
        _afterCommit.TryGetValue(connection, out var after);
        _afterCommit.Remove(connection);
        await transaction.CommitAsync(ct);
        foreach (var action in after ?? [])
        {
            try
            {
                action();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Committed is committed: a metric that fails must not make the caller handle the work again.
            }
        }
        if (written is null || written.Count == 0)
        {
            Notify();
            return;
        }
        foreach (var message in written)
        {
            _committed.Writer.TryWrite(message);
        }
    }

    /// <summary>Wakes the poll: for rows written without <see cref="EnqueueAsync"/> (a ledger posting's low-balance warning).</summary>
    public void Notify()
    {
        try
        {
            _pending.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled; one wake-up drains everything.
        }
    }

    internal Task<bool> WaitForPollAsync(TimeSpan timeout, CancellationToken ct) => _pending.WaitAsync(timeout, ct);

    internal ChannelReader<Pending> Committed => _committed.Reader;

    internal void CountSent(bool fromMemory, int count) =>
        Interlocked.Add(ref fromMemory ? ref _sentFromMemory : ref _sentByPoll, count);

    internal void CountDeleted(int count) => Interlocked.Add(ref _deleted, count);
}

/// <summary>
/// Messages queued by a statement (<see cref="Command"/>) the caller runs in its own batch; <see cref="ReadAsync"/>, with
/// the batch's reader at that statement's rows, makes them the transaction's.
/// </summary>
public sealed class StagedMessages(NpgsqlBatchCommand command, Func<NpgsqlDataReader, CancellationToken, Task> read)
{
    public NpgsqlBatchCommand Command { get; } = command;

    public Task ReadAsync(NpgsqlDataReader reader, CancellationToken ct) => read(reader, ct);
}

/// <summary>Messages sent from memory at commit, sent by the poll, and sent rows deleted after their retention.</summary>
public sealed record OutboxCounts(long SentFromMemory, long SentByPoll, long Deleted);
