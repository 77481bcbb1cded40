using System.Text;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Api;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Platform.Testing;

/// <summary>
/// A node's broker login in a stranger's hands: RabbitMQ.Client straight on the broker, with nothing but the
/// credentials enrollment gave the node. Each attempt runs on a fresh channel and answers the broker's refusal
/// (a channel closed with 403 ACCESS_REFUSED, 404 NOT_FOUND...) or null when the broker let it through.
/// </summary>
public sealed class RogueNode : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly IConnection _connection;

    private RogueNode(NodeBrokerLogin login, IConnection connection)
    {
        Login = login;
        _connection = connection;
    }

    public NodeBrokerLogin Login { get; }

    /// <param name="host">Overrides the login's host (a test broker on 127.0.0.1 that the scheduler calls by another name).</param>
    public static async Task<RogueNode> ConnectAsync(NodeBrokerLogin login, string? host = null)
    {
        var factory = new ConnectionFactory
        {
            HostName = host ?? login.Host,
            Port = login.Port,
            VirtualHost = login.VirtualHost,
            UserName = login.Username,
            Password = login.Password,
            AutomaticRecoveryEnabled = false,
        };
        return new RogueNode(login, await factory.CreateConnectionAsync($"rogue {login.Username}"));
    }

    /// <summary>What the broker answered a refused operation.</summary>
    public sealed record Refusal(ushort Code, string Text)
    {
        public bool AccessRefused => Code == 403 && Text.Contains("ACCESS_REFUSED", StringComparison.Ordinal);

        public override string ToString() => $"{Code} {Text}";
    }

    /// <summary>Runs <paramref name="operation"/> on a new channel (with publisher confirms): null when it succeeded, else the broker's refusal.</summary>
    public async Task<Refusal?> TryAsync(Func<IChannel, CancellationToken, Task> operation)
    {
        using var timeout = new CancellationTokenSource(Patience);
        var channel = await _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            timeout.Token);
        try
        {
            await operation(channel, timeout.Token);
            return null;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason is { } reason)
        {
            return new Refusal(reason.ReplyCode, reason.ReplyText);
        }
        catch (Exception) when (channel.CloseReason is { } reason)
        {
            return new Refusal(reason.ReplyCode, reason.ReplyText);
        }
        finally
        {
            await channel.DisposeAsync();
        }
    }

    public Task<Refusal?> TryPublishAsync(string exchange, object message, string routingKey = "") =>
        TryAsync((ch, ct) => ch.BasicPublishAsync(exchange, routingKey, mandatory: false, Envelope(message, out var body), body, ct).AsTask());

    /// <summary>Sends a message, as MassTransit would, to the node's own exchange.</summary>
    public async Task SendAsync(object message)
    {
        if (await TryPublishAsync(Login.Exchange, message) is { } refused)
            throw new InvalidOperationException($"the broker refused {message.GetType().Name} on the node's own exchange: {refused}");
    }

    public Task<Refusal?> TryDeclareQueueAsync(string queue) =>
        TryAsync((ch, ct) => ch.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: null, cancellationToken: ct));

    public Task<Refusal?> TryDeclareExchangeAsync(string exchange, string type = ExchangeType.Fanout) =>
        TryAsync((ch, ct) => ch.ExchangeDeclareAsync(exchange, type, durable: true, autoDelete: false, arguments: null, cancellationToken: ct));

    public Task<Refusal?> TryDeleteExchangeAsync(string exchange) =>
        TryAsync((ch, ct) => ch.ExchangeDeleteAsync(exchange, ifUnused: false, cancellationToken: ct));

    public Task<Refusal?> TryBindQueueAsync(string queue, string exchange, string routingKey = "") =>
        TryAsync((ch, ct) => ch.QueueBindAsync(queue, exchange, routingKey, arguments: null, cancellationToken: ct));

    public Task<Refusal?> TryBindExchangeAsync(string destination, string source, string routingKey = "") =>
        TryAsync((ch, ct) => ch.ExchangeBindAsync(destination, source, routingKey, arguments: null, cancellationToken: ct));

    /// <summary>Takes one message from a queue (basic.get needs the same read permission as consuming).</summary>
    public Task<Refusal?> TryGetAsync(string queue) => TryAsync((ch, ct) => ch.BasicGetAsync(queue, autoAck: false, ct));

    /// <summary>Registers a consumer on a queue and cancels it.</summary>
    public Task<Refusal?> TryConsumeAsync(string queue) => TryAsync(async (ch, ct) =>
    {
        var tag = await ch.BasicConsumeAsync(queue, autoAck: false, new RabbitMQ.Client.Events.AsyncEventingBasicConsumer(ch), ct);
        await ch.BasicCancelAsync(tag, cancellationToken: ct);
    });

    /// <summary>The next message on one of the node's queues (acknowledged), or null when it is empty.</summary>
    public async Task<(string[] MessageType, JsonElement Message)?> TakeAsync(string queue)
    {
        (string[], JsonElement)? taken = null;
        var refused = await TryAsync(async (ch, ct) =>
        {
            if (await ch.BasicGetAsync(queue, autoAck: true, ct) is not { } got)
                return;
            using var envelope = JsonDocument.Parse(got.Body);
            var types = envelope.RootElement.GetProperty("messageType").EnumerateArray().Select(t => t.GetString()!).ToArray();
            taken = (types, envelope.RootElement.GetProperty("message").Clone());
        });
        // A queue the scheduler has not declared yet is simply empty for now.
        return refused is null or { Code: 404 } ? taken : throw new InvalidOperationException($"reading {queue}: {refused}");
    }

    /// <summary>A MassTransit JSON envelope around <paramref name="message"/>, as the node's bus would send it.</summary>
    private static BasicProperties Envelope(object message, out ReadOnlyMemory<byte> body)
    {
        var id = Guid.NewGuid();
        var envelope = new Dictionary<string, object?>
        {
            ["messageId"] = id.ToString(),
            ["messageType"] = new[] { $"urn:message:{message.GetType().Namespace}:{message.GetType().Name}" },
            ["message"] = message,
            ["sentTime"] = DateTimeOffset.UtcNow,
            ["headers"] = new Dictionary<string, object>(),
        };
        body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(envelope, PlatformJson.Options));
        return new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = id.ToString(), Persistent = true };
    }

    public async ValueTask DisposeAsync() => await _connection.DisposeAsync();
}
