using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;

namespace Platform.Hosting.Outbox;

/// <summary>
/// Publishes unsent outbox rows with publisher confirms and marks them sent. Rows are claimed with
/// FOR UPDATE SKIP LOCKED so several instances of a service share the work; a row whose publish fails stays
/// unsent and is retried, so a message is sent at least once and carries the same MessageId every time.
/// </summary>
public sealed class OutboxRelay(NpgsqlDataSource dataSource, MessageOutbox outbox, IBus bus, Database.DatabaseState database, ILogger<OutboxRelay> logger) : BackgroundService
{
    private const int BatchSize = 200;
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(500);

    private sealed record Row(long Id, Guid MessageId, string MessageType, string? Destination, string Body);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var relayed = database.Migrated ? await RelayBatchAsync(stoppingToken) : 0;
                failures = 0;
                if (relayed < BatchSize)
                    await outbox.WaitAsync(IdlePoll, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                logger.LogWarning(ex, "Outbox relay failed ({Failures} in a row); unsent messages stay queued", failures);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * failures)), stoppingToken);
            }
        }
    }

    private async Task<int> RelayBatchAsync(CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var rows = (await connection.QueryAsync<Row>(new CommandDefinition(
            """
            select id, message_id as MessageId, message_type as MessageType, destination, body::text as Body
            from outbox where sent_at is null order by attempts, id limit @BatchSize
            for update skip locked
            """, new { BatchSize }, tx, cancellationToken: ct))).ToList();
        if (rows.Count == 0)
            return 0;

        // Confirms are awaited together: one round of broker acknowledgements per batch, not per message.
        // Each row's outcome is kept, so one row that cannot be sent neither blocks nor re-sends the others.
        var results = await Task.WhenAll(rows.Select(async row =>
        {
            try
            {
                await SendAsync(row, ct);
                return (row.Id, Error: (string?)null);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                return (row.Id, Error: (string?)ex.Message);
            }
        }));

        await connection.ExecuteAsync(new CommandDefinition(
            "update outbox set sent_at = now(), attempts = attempts + 1 where id = any(@Ids)",
            new { Ids = results.Where(r => r.Error is null).Select(r => r.Id).ToArray() }, tx, cancellationToken: ct));
        var failed = results.Where(r => r.Error is not null).ToList();
        foreach (var (id, error) in failed)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update outbox set attempts = attempts + 1, last_error = @error where id = @id", new { id, error }, tx, cancellationToken: ct));
        }
        await tx.CommitAsync(ct);
        if (failed.Count > 0)
            logger.LogWarning("{Count} outbox message(s) could not be sent and stay queued: {Error}", failed.Count, failed[0].Error);
        return rows.Count;
    }

    private async Task SendAsync(Row row, CancellationToken ct)
    {
        var type = typeof(JobSubmitted).Assembly.GetType(row.MessageType)
            ?? throw new InvalidOperationException($"outbox row {row.Id} has unknown message type {row.MessageType}");
        var message = JsonSerializer.Deserialize(row.Body, type, PlatformJson.Options)!;
        if (row.Destination is null)
        {
            await bus.Publish(message, type, ctx => ctx.MessageId = row.MessageId, ct);
        }
        else
        {
            var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{row.Destination}"));
            await endpoint.Send(message, type, ctx => ctx.MessageId = row.MessageId, ct);
        }
    }
}
