using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Platform.Hosting.Messaging;

/// <summary>When a service sends its dead letters back to their queues by itself.</summary>
public sealed class DeadLetterOptions
{
    public const string SectionName = "DeadLetters";

    /// <summary>Off: dead letters wait for <c>./platform dlq replay</c>.</summary>
    public bool Replay { get; set; } = true;

    /// <summary>How often the service looks at its <c>_error</c> queues.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a message waits in its <c>_error</c> queue before its first replay; each later replay waits twice as
    /// long as the one before, up to <see cref="MaxReplayDelay"/>.
    /// </summary>
    public TimeSpan FirstReplayAfter { get; set; } = TimeSpan.FromMinutes(1);

    public TimeSpan MaxReplayDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Replays after which a message is left where it is (parked) for a person to look at: with the defaults a
    /// cause that lasts about nine hours (1 + 2 + 4 ... min, then hourly) is ridden out, and a message that fails
    /// for a reason no wait fixes (a bug) stops costing retries.
    /// </summary>
    public int MaxReplays { get; set; } = 12;
}

/// <summary>
/// The queues this process consumes from, as their receive endpoints come up: the <c>_error</c> queues beside
/// them are the ones <see cref="DeadLetterReconciler"/> looks after.
/// </summary>
public sealed class ConsumedQueues : IReceiveEndpointObserver
{
    private readonly ConcurrentDictionary<string, byte> _names = new();

    public IReadOnlyCollection<string> Names => _names.Keys.Order(StringComparer.Ordinal).ToList();

    public Task Ready(ReceiveEndpointReady ready)
    {
        // rabbitmq://host/vhost/queue?bind=... : the queue is the last path segment. The bus's own temporary
        // queue (responses) is not a consumer's and never dead-letters.
        var queue = Uri.UnescapeDataString(ready.InputAddress.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "");
        if (queue.Length > 0 && !ready.InputAddress.Query.Contains("temporary=true", StringComparison.OrdinalIgnoreCase))
            _names.TryAdd(queue, 0);
        return Task.CompletedTask;
    }

    public Task Faulted(ReceiveEndpointFaulted faulted) => Task.CompletedTask;
    public Task Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;
    public Task Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;
}

/// <summary>
/// The reconciler for dead letters: a message whose consumer failed every immediate retry (a database down for
/// longer than they last) waits in its queue's <c>_error</c> queue, and what it would have done waits with it (a
/// <c>JobCompleted</c> there leaves a job's escrow held). Each service sends its own back to the queue they came
/// from after <see cref="DeadLetterOptions.FirstReplayAfter"/>, then with doubling waits, counting the replays in
/// the message's <c>x-platform-replays</c> header; after <see cref="DeadLetterOptions.MaxReplays"/> it leaves the
/// message parked for <c>./platform dlq</c>. Every consumer is idempotent, so a replay of a message that had in
/// fact been applied changes nothing; each move is published with a broker confirm before the original is
/// acknowledged, so a crash in between duplicates a message and never loses one.
/// </summary>
public sealed class DeadLetterReconciler(ConsumedQueues queues, RabbitMqAddress broker, IOptions<DeadLetterOptions> options, TimeProvider clock,
    ILogger<DeadLetterReconciler> logger) : BackgroundService
{
    public const string ReplaysHeader = "x-platform-replays";
    public const string ErrorSuffix = "_error";

    private IConnection? _connection;

    // Messages left parked at the last pass: a rise is logged as an error.
    private long _parked;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (!o.Replay)
            return;
        using var timer = new PeriodicTimer(o.CheckInterval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await PassAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // The broker is down or restarting, or a queue went away mid-pass: a message taken and not yet
                // acknowledged goes back when the channel closes, so everything is safe where it is, and the next
                // pass tries again. Nothing here may stop the service.
                logger.LogWarning("Dead letters not checked: {Error}", e.Message);
                await DropConnectionAsync();
            }
        }
    }

    /// <summary>One look at every consumed queue's <c>_error</c> queue.</summary>
    public async Task PassAsync(CancellationToken ct)
    {
        var connection = await ConnectAsync(ct);
        long parked = 0, seen = 0, replayed = 0;
        foreach (var queue in queues.Names)
        {
            var errorQueue = queue + ErrorSuffix;
            await using var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), ct);
            uint waiting;
            try
            {
                waiting = (await channel.QueueDeclarePassiveAsync(errorQueue, ct)).MessageCount;
            }
            catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
            {
                continue; // Nothing has ever been dead-lettered here: MassTransit declares the queue on first use.
            }
            // Only the messages there now: what this pass puts back at the tail is not looked at twice.
            for (var i = 0; i < waiting; i++)
            {
                if (await channel.BasicGetAsync(errorQueue, autoAck: false, ct) is not { } message)
                    break;
                seen++;
                var replays = ReplaysOf(message.BasicProperties);
                var due = FaultedAt(message.BasicProperties) + DelayBefore(replays + 1);
                var replay = replays < options.Value.MaxReplays && clock.GetUtcNow() >= due;
                var properties = new BasicProperties(message.BasicProperties);
                if (replay)
                {
                    properties.Headers = new Dictionary<string, object?>(message.BasicProperties.Headers ?? new Dictionary<string, object?>())
                    {
                        [ReplaysHeader] = replays + 1,
                    };
                }
                else if (replays >= options.Value.MaxReplays)
                {
                    parked++;
                }
                // A message not due yet (or parked) goes to the tail of its _error queue, so the ones behind it are seen.
                await channel.BasicPublishAsync("", replay ? queue : errorQueue, mandatory: true, properties, message.Body, ct);
                await channel.BasicAckAsync(message.DeliveryTag, multiple: false, ct);
                if (replay)
                {
                    replayed++;
                    logger.LogWarning("Dead letter {MessageId} replayed to {Queue} (replay {Replay} of at most {MaxReplays})",
                        message.BasicProperties.MessageId, queue, replays + 1, options.Value.MaxReplays);
                }
            }
        }
        // Said only while there are dead letters: a quiet service logs nothing here.
        if (seen > 0)
            logger.LogInformation("Dead letters checked: {Replayed} replayed, {Waiting} waiting for their next replay, {Parked} parked", replayed, seen - replayed - parked, parked);
        if (parked > Interlocked.Exchange(ref _parked, parked))
            logger.LogError("{Parked} dead letter(s) parked after {MaxReplays} replays each: see ./platform dlq list", parked, options.Value.MaxReplays);
    }

    /// <summary>The wait before the <paramref name="replay"/>-th replay, counted from the message's latest fault.</summary>
    private TimeSpan DelayBefore(int replay)
    {
        var o = options.Value;
        var delay = o.FirstReplayAfter * Math.Pow(2, Math.Min(replay - 1, 30));
        return delay < o.MaxReplayDelay ? delay : o.MaxReplayDelay;
    }

    private static int ReplaysOf(IReadOnlyBasicProperties properties) =>
        properties.Headers?.TryGetValue(ReplaysHeader, out var value) == true ? value switch
        {
            int n => n,
            long n => (int)n,
            byte[] text when int.TryParse(Encoding.UTF8.GetString(text), CultureInfo.InvariantCulture, out var n) => n,
            _ => 0,
        } : 0;

    /// <summary>When MassTransit moved the message here (its MT-Fault-Timestamp header); unknown is "long ago".</summary>
    private static DateTimeOffset FaultedAt(IReadOnlyBasicProperties properties)
    {
        if (properties.Headers?.TryGetValue("MT-Fault-Timestamp", out var value) != true)
            return DateTimeOffset.MinValue;
        return value switch
        {
            byte[] text when DateTimeOffset.TryParse(Encoding.UTF8.GetString(text), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) => at,
            AmqpTimestamp stamp => DateTimeOffset.FromUnixTimeSeconds(stamp.UnixTime),
            _ => DateTimeOffset.MinValue,
        };
    }

    private async Task<IConnection> ConnectAsync(CancellationToken ct)
    {
        if (_connection is { IsOpen: true } open)
            return open;
        await DropConnectionAsync();
        var factory = new ConnectionFactory
        {
            VirtualHost = broker.VirtualHost,
            UserName = broker.Username,
            Password = broker.Password,
            ClientProvidedName = "dead-letter-reconciler",
            RequestedHeartbeat = BusRegistration.BrokerHeartbeat,
        };
        // Any node of a cluster will do: the client tries them until one answers.
        _connection = await factory.CreateConnectionAsync(broker.Nodes.Select(AmqpTcpEndpoint.Parse).ToList(), ct);
        return _connection;
    }

    private async Task DropConnectionAsync()
    {
        if (_connection is null)
            return;
        try
        {
            await _connection.DisposeAsync();
        }
        catch (Exception e) when (e is OperationInterruptedException or AlreadyClosedException or IOException)
        {
            // Already gone.
        }
        _connection = null;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await DropConnectionAsync();
    }
}
