using System.Diagnostics;
using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Tracing;

namespace Platform.Hosting.Outbox;

/// <summary>
/// Sends outbox messages with publisher confirms and marks their rows sent, by two paths:
/// - from memory: the messages a transaction committed through <see cref="MessageOutbox.CommitAsync"/>, batched
///   over however many commits are waiting; one statement finds which of them are committed and unsent, one marks
///   them sent after the broker confirmed them;
/// - by poll: rows nobody handed over (written by SQL, or by a process that died before sending them, or whose send
///   failed), claimed with FOR UPDATE SKIP LOCKED so several instances of a service share the work.
/// A row whose send fails stays unsent and is retried by the poll, so a message is sent at least once and carries the
/// same MessageId every time; except a bundled event (<see cref="BundledAttribute"/>), which travels in a
/// <see cref="Bundle{T}"/> with every event of its type sent together and has no message id of its own (its consumers
/// are idempotent per item). Sent rows are deleted once <see cref="OutboxOptions.SentRetention"/> has passed.
/// </summary>
public sealed class OutboxRelay(NpgsqlDataSource dataSource, MessageOutbox outbox, IBus bus, Database.DatabaseState database,
    IOptions<OutboxOptions> options, ILogger<OutboxRelay> logger) : BackgroundService
{
    private const int BatchSize = 200;

    private sealed record Row(long Id, Guid MessageId, string MessageType, string? Destination, string Body, string? TraceParent);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(
            RunAsync("memory", SendCommittedAsync, stoppingToken),
            RunAsync("poll", PollAsync, stoppingToken),
            RunAsync("cleanup", CleanUpAsync, stoppingToken));

    // Each path runs until shutdown; a failure (database or broker down) is logged and retried with a growing pause.
    private async Task RunAsync(string path, Func<CancellationToken, Task> step, CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (database.Migrated)
                    await step(stoppingToken);
                else
                    await Task.Delay(TimeSpan.FromMilliseconds(100), stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                logger.LogWarning(ex, "Outbox relay ({Path}) failed ({Failures} in a row); unsent messages stay queued", path, failures);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * failures)), stoppingToken);
            }
        }
    }

    private async Task SendCommittedAsync(CancellationToken ct)
    {
        var reader = outbox.Committed;
        if (!reader.TryPeek(out _))
            await reader.WaitToReadAsync(ct);
        var batch = new List<MessageOutbox.Pending>(BatchSize);
        while (batch.Count < BatchSize && reader.TryRead(out var pending))
            batch.Add(pending);
        if (batch.Count == 0)
            return;

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var unsent = (await connection.QueryAsync<long>(new CommandDefinition(
            "select id from outbox where id = any(@ids) and sent_at is null", new { ids = batch.Select(p => p.Id).ToArray() },
            cancellationToken: ct))).ToHashSet();
        var results = await SendAllAsync(Sends(batch.Where(p => unsent.Contains(p.Id))), ct);
        // A failed send is left to the poll at once (relay_after cleared), which retries it with its own backoff.
        await RecordAsync(connection, results, retryByPoll: true, ct);
        outbox.CountSent(fromMemory: true, results.Count(r => r.Error is null));
    }

    private async Task PollAsync(CancellationToken ct)
    {
        var relayed = await PollBatchAsync(ct);
        if (relayed < BatchSize)
            await outbox.WaitForPollAsync(options.Value.PollInterval, ct);
    }

    private async Task<int> PollBatchAsync(CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var rows = (await connection.QueryAsync<Row>(new CommandDefinition(
            """
            select id, message_id as MessageId, message_type as MessageType, destination, body::text as Body, trace_parent as TraceParent
            from outbox where sent_at is null and (relay_after is null or relay_after <= now())
            order by attempts, id limit @BatchSize
            for update skip locked
            """, new { BatchSize }, tx, cancellationToken: ct))).ToList();
        if (rows.Count == 0)
            return 0;

        // A row this build cannot read (a type it does not know) fails alone and stays for a build that can.
        var read = rows.Select(row => (row.Id, Pending: TryRead(row, out var error), Error: error)).ToList();
        var results = (await SendAllAsync(Sends(read.Where(r => r.Pending is not null).Select(r => r.Pending!)), ct))
            .Concat(read.Where(r => r.Pending is null).Select(r => (r.Id, r.Error))).ToArray();
        await RecordAsync(connection, results, retryByPoll: false, ct, tx);
        await tx.CommitAsync(ct);
        outbox.CountSent(fromMemory: false, results.Count(r => r.Error is null));
        return rows.Count;
    }

    // One send per message, except the bundled events (BundledAttribute): those of one type and destination go in one
    // Bundle<T>, in the order the rows were written. The bundle's outcome is each of its rows' outcome.
    private IEnumerable<(long[] Ids, Func<CancellationToken, Task> Send)> Sends(IEnumerable<MessageOutbox.Pending> messages)
    {
        var bundles = new Dictionary<(Type, string?), List<MessageOutbox.Pending>>();
        foreach (var m in messages)
        {
            if (!BundledAttribute.IsOn(m.Type))
            {
                yield return ([m.Id], ct => SendAsync(m.Message, m.Type, m.MessageId, m.Destination, [m.TraceParent], ct));
                continue;
            }
            if (!bundles.TryGetValue((m.Type, m.Destination), out var items))
                bundles[(m.Type, m.Destination)] = items = [];
            items.Add(m);
        }
        foreach (var ((type, destination), items) in bundles)
        {
            var bundleType = typeof(Bundle<>).MakeGenericType(type);
            items.Sort((a, b) => a.Id.CompareTo(b.Id));
            var list = Array.CreateInstance(type, items.Count);
            for (var i = 0; i < items.Count; i++)
                list.SetValue(items[i].Message, i);
            var traceParents = items.Select(m => m.TraceParent).ToArray();
            var bundle = Activator.CreateInstance(bundleType)!;
            bundleType.GetProperty(nameof(Bundle<object>.Items))!.SetValue(bundle, list);
            bundleType.GetProperty(nameof(Bundle<object>.TraceParents))!.SetValue(bundle, traceParents);
            yield return (items.Select(m => m.Id).ToArray(), ct => SendAsync(bundle, bundleType, NewId.NextGuid(), destination, traceParents, ct));
        }
    }

    // Confirms are awaited together: one round of broker acknowledgements per batch, not per message. Each send's
    // outcome is kept for its rows, so one message that cannot be sent neither blocks nor re-sends the others. The
    // batch waits SendTimeout at most, whether or not the transport honours the token: a send still running after it
    // is a failure, and its message is sent again later with the same MessageId (consumers deduplicate).
    private async Task<(long Id, string? Error)[]> SendAllAsync(IEnumerable<(long[] Ids, Func<CancellationToken, Task> Send)> sends, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(options.Value.SendTimeout);
        return (await Task.WhenAll(sends.Select(async s =>
        {
            try
            {
                await s.Send(limit.Token).WaitAsync(limit.Token);
                return s.Ids.Select(id => (id, Error: (string?)null));
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                var error = ex is OperationCanceledException ? $"not confirmed by the broker within {options.Value.SendTimeout.TotalSeconds:F0} s" : ex.Message;
                return s.Ids.Select(id => (id, Error: (string?)error));
            }
        }))).SelectMany(r => r).ToArray();
    }

    private async Task RecordAsync(NpgsqlConnection connection, (long Id, string? Error)[] results, bool retryByPoll, CancellationToken ct,
        NpgsqlTransaction? tx = null)
    {
        var sent = results.Where(r => r.Error is null).Select(r => r.Id).ToArray();
        if (sent.Length > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update outbox set sent_at = now(), attempts = attempts + 1 where id = any(@sent)", new { sent }, tx, cancellationToken: ct));
        }
        var failed = results.Where(r => r.Error is not null).ToList();
        foreach (var (id, error) in failed)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                update outbox set attempts = attempts + 1, last_error = @error,
                    relay_after = case when @retryByPoll then null else relay_after end
                where id = @id
                """, new { id, error, retryByPoll }, tx, cancellationToken: ct));
        }
        if (failed.Count > 0)
            logger.LogWarning("{Count} outbox message(s) could not be sent and stay queued: {Error}", failed.Count, failed[0].Error);
    }

    private async Task CleanUpAsync(CancellationToken ct)
    {
        await Task.Delay(options.Value.CleanupInterval, ct);
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        int deleted;
        do
        {
            // Skip rows another instance is deleting rather than wait for it.
            deleted = await connection.ExecuteAsync(new CommandDefinition(
                """
                delete from outbox where id in (
                    select id from outbox where sent_at < now() - @retention order by sent_at limit 5000 for update skip locked)
                """, new { retention = options.Value.SentRetention }, cancellationToken: ct));
            outbox.CountDeleted(deleted);
        }
        while (deleted == 5000);
    }

    private static MessageOutbox.Pending? TryRead(Row row, out string? error)
    {
        error = null;
        var type = typeof(JobSubmitted).Assembly.GetType(row.MessageType);
        if (type is null)
        {
            error = $"outbox row {row.Id} has unknown message type {row.MessageType}";
            return null;
        }
        try
        {
            return new MessageOutbox.Pending(row.Id, row.MessageId, JsonSerializer.Deserialize(row.Body, type, PlatformJson.Options)!, type, row.Destination,
                row.TraceParent);
        }
        catch (JsonException ex)
        {
            error = $"outbox row {row.Id} cannot be read as {row.MessageType}: {ex.Message}";
            return null;
        }
    }

    // Sent inside a span of the trace that wrote the message: MassTransit's send span and the message's trace headers
    // follow it. A bundle's items come from many traces: its span links them all, and each item's own context travels
    // in the bundle (Bundle<T>.TraceParents).
    private async Task SendAsync(object message, Type type, Guid messageId, string? destination, string?[] traceParents, CancellationToken ct)
    {
        using var span = traceParents.Length == 1
            ? (ActivityContext.TryParse(traceParents[0], null, out var parent)
                ? PlatformTracing.Source.StartActivity("outbox send", ActivityKind.Internal, parent) : null)
            : PlatformTracing.Source.StartActivity("outbox send", ActivityKind.Internal, parentContext: default,
                links: traceParents.Select(p => ActivityContext.TryParse(p, null, out var c) ? c : default).Where(c => c != default).Select(c => new ActivityLink(c)));
        if (destination is null)
        {
            await bus.Publish(message, type, ctx => ctx.MessageId = messageId, ct);
        }
        else
        {
            // A queue's name, or an address of its own (exchange:name).
            var endpoint = await bus.GetSendEndpoint(new Uri(destination.Contains(':', StringComparison.Ordinal) ? destination : $"queue:{destination}"));
            await endpoint.Send(message, type, ctx => ctx.MessageId = messageId, ct);
        }
    }
}
