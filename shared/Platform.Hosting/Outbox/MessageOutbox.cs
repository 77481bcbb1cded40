using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;

namespace Platform.Hosting.Outbox;

/// <summary>
/// Writes messages into the outbox table inside the caller's transaction; <see cref="OutboxRelay"/> publishes
/// them after commit. This is how every state change that publishes stays atomic with its message.
/// </summary>
public sealed class MessageOutbox
{
    private readonly SemaphoreSlim _pending = new(0, 1);

    /// <summary>Queue a message to publish (or, with <paramref name="sendTo"/>, to send to that queue).</summary>
    public Task EnqueueAsync<T>(NpgsqlTransaction transaction, T message, string? sendTo = null, CancellationToken ct = default) where T : class
    {
        var type = message.GetType();
        // The relay resolves types from the contracts assembly: anything else could never be sent.
        if (type.Assembly != typeof(Contracts.Messages.JobSubmitted).Assembly)
            throw new ArgumentException($"{type.FullName} is not a Platform.Contracts message; the outbox can only send those", nameof(message));
        return transaction.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into outbox (message_id, message_type, destination, body)
            values (@MessageId, @MessageType, @Destination, @Body::jsonb)
            """,
            new
            {
                MessageId = Guid.NewGuid(),
                MessageType = type.FullName,
                Destination = sendTo,
                Body = JsonSerializer.Serialize(message, type, PlatformJson.Options),
            },
            transaction, cancellationToken: ct));
    }

    /// <summary>Commits and wakes the relay so the messages leave at once instead of at the next poll.</summary>
    public async Task CommitAsync(NpgsqlTransaction transaction, CancellationToken ct = default)
    {
        await transaction.CommitAsync(ct);
        Notify();
    }

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

    internal Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _pending.WaitAsync(timeout, ct);
}
