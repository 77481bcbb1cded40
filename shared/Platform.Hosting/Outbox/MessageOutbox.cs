using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;

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
    internal sealed record Pending(long Id, Guid MessageId, object Message, Type Type, string? Destination);

    // The messages written in each open transaction. Weak keys: a transaction rolled back or committed some other
    // way takes its list with it, and its rows (if committed) are polled once their claim passes. Npgsql reuses a
    // connection's transaction object, so a list can outlive its transaction and be handed over with a later one:
    // the relay therefore sends only rows it finds committed and unsent (a rolled-back row does not exist).
    private readonly ConditionalWeakTable<NpgsqlTransaction, List<Pending>> _open = new();
    private readonly SemaphoreSlim _pending = new(0, 1);

    // Bounded: when the relay falls behind, commits do not wait for it; what does not fit is left to the poll.
    private readonly Channel<Pending> _committed = Channel.CreateBounded<Pending>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    private long _sentFromMemory;
    private long _sentByPoll;
    private long _deleted;

    /// <summary>What the relay has done since start: for tests and operators, the proof of which path sent what.</summary>
    public OutboxCounts Counts => new(Interlocked.Read(ref _sentFromMemory), Interlocked.Read(ref _sentByPoll), Interlocked.Read(ref _deleted));

    /// <summary>Queue a message to publish (or, with <paramref name="sendTo"/>, to send to that queue).</summary>
    public async Task EnqueueAsync<T>(NpgsqlTransaction transaction, T message, string? sendTo = null, CancellationToken ct = default) where T : class
    {
        var type = message.GetType();
        // The relay resolves types from the contracts assembly: anything else could never be sent.
        if (type.Assembly != typeof(Contracts.Messages.JobSubmitted).Assembly)
            throw new ArgumentException($"{type.FullName} is not a Platform.Contracts message; the outbox can only send those", nameof(message));
        var messageId = Guid.NewGuid();
        var id = await transaction.Connection!.ExecuteScalarAsync<long>(new CommandDefinition(
            """
            insert into outbox (message_id, message_type, destination, body, relay_after)
            values (@MessageId, @MessageType, @Destination, @Body::jsonb, now() + @Claim)
            returning id
            """,
            new
            {
                MessageId = messageId,
                MessageType = type.FullName,
                Destination = sendTo,
                Body = JsonSerializer.Serialize(message, type, PlatformJson.Options),
                Claim = options.Value.MemoryClaim,
            },
            transaction, cancellationToken: ct));
        _open.GetOrCreateValue(transaction).Add(new Pending(id, messageId, message, type, sendTo));
    }

    /// <summary>
    /// Commits and hands the transaction's messages to the relay, so they leave at once; wakes the poll instead
    /// when the transaction wrote outbox rows only by SQL.
    /// </summary>
    public async Task CommitAsync(NpgsqlTransaction transaction, CancellationToken ct = default)
    {
        _open.TryGetValue(transaction, out var written);
        _open.Remove(transaction);
        await transaction.CommitAsync(ct);
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

/// <summary>Messages sent from memory at commit, sent by the poll, and sent rows deleted after their retention.</summary>
public sealed record OutboxCounts(long SentFromMemory, long SentByPoll, long Deleted);
