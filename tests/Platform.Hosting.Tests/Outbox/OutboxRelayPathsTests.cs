using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Hosting.Tests.Outbox;

/// <summary>
/// Which path sends what: messages committed through <see cref="MessageOutbox.CommitAsync"/> leave from memory,
/// rows nobody handed over are found by the poll once their claim passes, rows of a rolled-back transaction are
/// never sent whatever the relay was handed, and sent rows are deleted after their retention. Each test runs its
/// own host with the timing it needs, on its own database and virtual host.
/// </summary>
public sealed class OutboxRelayPathsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private TestEnvironment _env = null!;
    private RunningHost? _host;
    private readonly Deliveries _deliveries = new();

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-outbox-paths");

    public async Task DisposeAsync()
    {
        if (_host is not null)
            await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    private async Task<RunningHost> StartAsync(Action<OutboxOptions> timing)
    {
        _host = await RunningHost.StartAsync(_env, services =>
        {
            services.AddSingleton(_deliveries);
            services.AddPlatformOutbox();
            services.Configure(timing);
            services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri, x => x.AddConsumer<PublishedProbeConsumer>());
        });
        var bus = _host.Get<IBusControl>();
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, Timeout, "the bus to be healthy");
        return _host;
    }

    [Fact]
    public async Task Messages_committed_through_the_outbox_leave_from_memory_without_a_poll()
    {
        // The poll runs once at start and then not for an hour: only the memory path can send these.
        var host = await StartAsync(o => o.PollInterval = TimeSpan.FromHours(1));
        var outbox = host.Get<MessageOutbox>();
        var batch = Enumerable.Range(0, 20).Select(_ => Probe()).ToList();

        foreach (var message in batch)
        {
            await using var connection = await RunningHost.OpenDatabaseAsync(_env);
            await using var tx = await connection.BeginTransactionAsync();
            await outbox.EnqueueAsync(tx, message);
            await outbox.CommitAsync(tx);
        }

        foreach (var message in batch)
            await _deliveries.WaitForAsync(message.JobId, Timeout);
        await Eventually.UntilAsync(() => UnsentAsync(), n => n == 0, Timeout, "every row to be marked sent");
        var counts = outbox.Counts;
        output.WriteLine($"counts: {counts}");
        Assert.Equal(batch.Count, counts.SentFromMemory);
        Assert.Equal(0, counts.SentByPoll);
    }

    [Fact]
    public async Task A_row_committed_without_the_outbox_is_sent_by_the_poll_once_its_claim_passes()
    {
        var host = await StartAsync(o =>
        {
            o.MemoryClaim = TimeSpan.FromSeconds(1);
            o.PollInterval = TimeSpan.FromMilliseconds(100);
        });
        var outbox = host.Get<MessageOutbox>();
        var message = Probe();

        // As a process that died between its commit and its relay would leave it: committed, never handed over.
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await outbox.EnqueueAsync(tx, message);
            await tx.CommitAsync();
        }

        var delivery = await _deliveries.WaitForAsync(message.JobId, Timeout);
        // The relay marks the row after the broker confirmed it, which can be after the delivery.
        var row = await Eventually.UntilAsync(async () =>
        {
            await using var check = await RunningHost.OpenDatabaseAsync(_env);
            return await check.QuerySingleAsync<(Guid MessageId, bool Sent, bool? ClaimPassed)>(
                "select message_id, sent_at is not null, sent_at >= relay_after from outbox where body->>'jobId' = @jobId",
                new { jobId = message.JobId.Value });
        }, r => r.Sent, Timeout, "the row to be marked sent");
        Assert.Equal(row.MessageId, delivery.MessageId);
        Assert.True(row.ClaimPassed, "the poll sent the row before its memory claim passed");
        Assert.Equal(new OutboxCounts(0, 1, 0), outbox.Counts);
    }

    [Fact]
    public async Task A_message_of_a_rolled_back_transaction_is_never_sent_even_when_its_connection_commits_another()
    {
        var host = await StartAsync(o => o.PollInterval = TimeSpan.FromHours(1));
        var outbox = host.Get<MessageOutbox>();
        var rolledBack = Probe();
        var committed = Probe();

        // One connection, two transactions: Npgsql hands out the same transaction object again, so what the
        // outbox remembered of the first can be handed over with the second.
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        {
            var first = await connection.BeginTransactionAsync();
            await outbox.EnqueueAsync(first, rolledBack);
            await first.RollbackAsync();
            var second = await connection.BeginTransactionAsync();
            output.WriteLine($"the second transaction is the first object again: {ReferenceEquals(first, second)}");
            Assert.Same(first, second);
            await outbox.EnqueueAsync(second, committed);
            await outbox.CommitAsync(second);
        }

        await _deliveries.WaitForAsync(committed.JobId, Timeout);
        await Eventually.UntilAsync(() => UnsentAsync(), n => n == 0, Timeout, "the committed row to be marked sent");
        // The relay handled the whole batch it was handed (it marks rows after sending them all), so a send of the
        // rolled-back message would have been delivered by now, ahead of or beside the committed one.
        Assert.Equal([committed.JobId], _deliveries.All.Select(d => d.Message.JobId));
        Assert.Equal(1, outbox.Counts.SentFromMemory);
    }

    [Fact]
    public async Task Sent_rows_are_deleted_after_their_retention_and_unsent_ones_are_kept()
    {
        var host = await StartAsync(o =>
        {
            o.SentRetention = TimeSpan.FromSeconds(1);
            o.CleanupInterval = TimeSpan.FromMilliseconds(200);
        });
        var outbox = host.Get<MessageOutbox>();
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        {
            // A row no relay can send (its type does not exist): unsent, so never deleted.
            await connection.ExecuteAsync(
                "insert into outbox (message_id, message_type, body) values (@id, 'Nope.Missing', '{}'::jsonb)", new { id = Guid.NewGuid() });
        }
        var message = Probe();
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await outbox.EnqueueAsync(tx, message);
            await outbox.CommitAsync(tx);
        }

        await _deliveries.WaitForAsync(message.JobId, Timeout);
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await RunningHost.OpenDatabaseAsync(_env);
            return await connection.ExecuteScalarAsync<int>("select count(*) from outbox where body->>'jobId' = @jobId", new { jobId = message.JobId.Value });
        }, n => n == 0, Timeout, "the sent row to be deleted");
        Assert.True(outbox.Counts.Deleted >= 1);
        await using var check = await RunningHost.OpenDatabaseAsync(_env);
        Assert.Equal(1, await check.ExecuteScalarAsync<int>("select count(*) from outbox where message_type = 'Nope.Missing' and sent_at is null"));
    }

    private async Task<int> UnsentAsync()
    {
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        return await connection.ExecuteScalarAsync<int>("select count(*) from outbox where sent_at is null");
    }

    private static JobRejected Probe() => new() { JobId = JobId.New(), Reason = "probe", Detail = "an outbox probe", OccurredAt = DateTimeOffset.UtcNow };
}
