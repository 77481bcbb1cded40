using System.Collections.Concurrent;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Hosting.Outbox;
using Platform.Testing;

namespace Platform.Hosting.Tests.Outbox;

/// <summary>
/// The outbox and its relay on a plain host against the real Postgres and RabbitMQ. The relay can only relay
/// Platform.Contracts messages, so the probes consume <see cref="JobRejected"/>, each test with its own job ids.
/// </summary>
public sealed class OutboxRelayTests : IAsyncLifetime
{
    private const string DirectQueue = "hostingtest-direct";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private TestEnvironment _env = null!;
    private RunningHost _host = null!;
    private readonly Deliveries _deliveries = new();
    private readonly Bundles _bundles = new();

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-outbox");
        _host = await RunningHost.StartAsync(_env, services =>
        {
            services.AddSingleton(_deliveries);
            services.AddSingleton(_bundles);
            services.AddPlatformOutbox();
            services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri, x =>
            {
                // One at a time: each queue is consumed in the order the relay published to it.
                x.AddConsumer<PublishedProbeConsumer>().Endpoint(e => e.ConcurrentMessageLimit = 1);
                x.AddConsumer<BundleProbeConsumer>().Endpoint(e => e.ConcurrentMessageLimit = 1);
                // Bound to no exchange: only a message sent to this queue by name can arrive here.
                x.AddConsumer<DirectProbeConsumer>().Endpoint(e =>
                {
                    e.Name = DirectQueue;
                    e.ConfigureConsumeTopology = false;
                    e.ConcurrentMessageLimit = 1;
                });
            });
        });

        // A publish before the consumer's queue is bound would go nowhere: wait for the endpoints.
        var bus = _host.Get<IBusControl>();
        await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, Timeout, "the bus to be healthy");
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    [Fact]
    public async Task Message_enqueued_in_a_committed_transaction_is_delivered_with_the_outbox_message_id()
    {
        var funded = Probe();

        await EnqueueAsync(funded, commit: true);

        var delivery = await _deliveries.WaitForAsync(funded.JobId, Timeout);
        var row = await SentRowAsync(funded.JobId);
        Assert.Equal(row.MessageId, delivery.MessageId);
        Assert.Equal(typeof(JobRejected).FullName, row.MessageType);
        Assert.Null(row.Destination);
        Assert.NotEqual(DirectQueue, delivery.Queue);
        Assert.Equal(funded, delivery.Message);
    }

    [Fact]
    public async Task Message_enqueued_in_a_rolled_back_transaction_is_never_delivered()
    {
        var rolledBack = Probe();
        var marker = Probe();

        await EnqueueAsync(rolledBack, commit: false);
        await EnqueueAsync(marker, commit: true);

        // The relay sends only outbox rows, and the rolled-back one was never written.
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        {
            Assert.Equal(0, await connection.ExecuteScalarAsync<int>(
                "select count(*) from outbox where body->>'jobId' = @jobId", new { jobId = rolledBack.JobId.Value }));
        }

        // And the subscriber, which would have had it no later than the marker enqueued after it, sees only the marker.
        await _deliveries.WaitForAsync(marker.JobId, Timeout);
        await SentRowAsync(marker.JobId);
        Assert.Equal([marker.JobId], _deliveries.All.Select(d => d.Message.JobId));
    }

    [Fact]
    public async Task Message_enqueued_with_sendTo_is_sent_to_the_named_queue_only()
    {
        var sent = Probe();
        var marker = Probe();

        await EnqueueAsync(sent, commit: true, sendTo: DirectQueue);

        var delivery = await _deliveries.WaitForAsync(sent.JobId, Timeout);
        var row = await SentRowAsync(sent.JobId);
        Assert.Equal(DirectQueue, delivery.Queue);
        Assert.Equal(row.MessageId, delivery.MessageId);
        Assert.Equal(DirectQueue, row.Destination);

        // The send was confirmed by the broker before the marker was even written: had it also been published,
        // the subscriber's queue would have handed it over before the marker.
        await EnqueueAsync(marker, commit: true);
        var markerDelivery = await _deliveries.WaitForAsync(marker.JobId, Timeout);
        Assert.NotEqual(DirectQueue, markerDelivery.Queue);
        Assert.Equal(
            [(sent.JobId, DirectQueue), (marker.JobId, markerDelivery.Queue)],
            _deliveries.All.Select(d => (d.Message.JobId, d.Queue)));
    }

    [Fact]
    public async Task Messages_committed_in_one_transaction_are_all_delivered_once_each()
    {
        var batch = Enumerable.Range(0, 25).Select(_ => Probe()).ToList();

        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        await using (var tx = await connection.BeginTransactionAsync())
        {
            var outbox = _host.Get<MessageOutbox>();
            foreach (var message in batch)
            {
                await outbox.EnqueueAsync(tx, message);
            }

            await outbox.CommitAsync(tx);
        }

        await Eventually.UntilAsync(
            () => Task.FromResult(_deliveries.All.Count), n => n >= batch.Count, Timeout, $"{batch.Count} deliveries");
        foreach (var message in batch)
        {
            await SentRowAsync(message.JobId);
        }

        Assert.Equal(
            batch.Select(m => m.JobId.Value).Order(StringComparer.Ordinal),
            _deliveries.All.Select(d => d.Message.JobId.Value).Order(StringComparer.Ordinal));
        Assert.Equal(batch.Count, _deliveries.All.Select(d => d.MessageId).Distinct().Count());
    }

    [Fact]
    public async Task Bundled_events_sent_together_travel_as_one_bundle_in_the_order_written()
    {
        var outbox = _host.Get<MessageOutbox>();
        var sentByPoll = outbox.Counts.SentByPoll;

        // Committed without handing the rows to the relay: the poll claims all 25 in one read and sends them together.
        var events = await EnqueueFundedAsync(throughOutbox: false);
        outbox.Notify();

        var bundle = await _bundles.WaitForAsync(events[0].JobId, Timeout);
        Assert.Equal(events, bundle);
        foreach (var e in events)
            await SentRowAsync(e.JobId);
        Assert.Equal(sentByPoll + events.Count, outbox.Counts.SentByPoll);
        Assert.Single(_bundles.All, b => b.Any(e => events.Contains(e)));
    }

    [Fact]
    public async Task Bundled_events_committed_through_the_outbox_are_each_delivered_once()
    {
        var outbox = _host.Get<MessageOutbox>();
        var sentFromMemory = outbox.Counts.SentFromMemory;

        var events = await EnqueueFundedAsync(throughOutbox: true);

        foreach (var e in events)
            await SentRowAsync(e.JobId);
        await Eventually.UntilAsync(() => Task.FromResult(_bundles.All.SelectMany(b => b).Count(events.Contains)), n => n >= events.Count, Timeout,
            "every event delivered");
        // However the relay happened to split them, each event came once, and in the order written within its bundle.
        var delivered = _bundles.All.SelectMany(b => b).Where(events.Contains).ToList();
        Assert.Equal(events.Count, delivered.Count);
        Assert.Equal(events, delivered);
        Assert.True(outbox.Counts.SentFromMemory >= sentFromMemory + events.Count);
        Assert.Empty(_deliveries.All);
    }

    [Fact]
    public async Task A_row_that_cannot_be_sent_neither_blocks_nor_repeats_the_others()
    {
        await using (var connection = await RunningHost.OpenDatabaseAsync(_env))
        {
            await connection.ExecuteAsync(
                "insert into outbox (message_id, message_type, body) values (@id, 'Nope.Missing', '{}'::jsonb)", new { id = Guid.NewGuid() });
        }
        // Written by SQL, so the poll finds it (nobody hands it over) and fails on it.
        await Eventually.UntilAsync(BadRowAsync, bad => bad.Attempts >= 1, Timeout, "the poll to try the unsendable row");
        var good = Probe();
        var marker = Probe();

        await EnqueueAsync(good, commit: true);
        await SentRowAsync(good.JobId);
        await EnqueueAsync(marker, commit: true);
        await _deliveries.WaitForAsync(marker.JobId, Timeout);
        // Another poll pass after the good row was sent: the bad row's failure is retried without repeating the good one.
        var attempts = (await BadRowAsync()).Attempts;
        await Eventually.UntilAsync(BadRowAsync, bad => bad.Attempts > attempts, Timeout, "the poll to retry the unsendable row");

        Assert.Single(_deliveries.All, d => d.Message.JobId == good.JobId);
        var bad = await BadRowAsync();
        Assert.False(bad.Sent);
        Assert.Contains("Nope.Missing", bad.LastError, StringComparison.Ordinal);

        async Task<(bool Sent, int Attempts, string? LastError)> BadRowAsync()
        {
            await using var check = await RunningHost.OpenDatabaseAsync(_env);
            return await check.QuerySingleAsync<(bool Sent, int Attempts, string? LastError)>(
                "select sent_at is not null, attempts, last_error from outbox where message_type = 'Nope.Missing'");
        }
    }

    [Fact]
    public async Task Only_contract_messages_can_be_enqueued()
    {
        var outbox = _host.Get<MessageOutbox>();
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await using var tx = await connection.BeginTransactionAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => outbox.EnqueueAsync(tx, new NotAContract("x")));
    }

    private sealed record NotAContract(string Value);

    private static JobRejected Probe() => new() { JobId = JobId.New(), Reason = "probe", Detail = "an outbox probe", OccurredAt = DateTimeOffset.UtcNow };

    /// <summary>25 bundled events in one transaction, committed through the outbox (handed to the relay) or around it.</summary>
    private async Task<List<JobFunded>> EnqueueFundedAsync(bool throughOutbox)
    {
        var outbox = _host.Get<MessageOutbox>();
        var events = Enumerable.Range(0, 25).Select(i => new JobFunded { JobId = JobId.New(), Escrowed = i, OccurredAt = DateTimeOffset.UtcNow }).ToList();
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await using var tx = await connection.BeginTransactionAsync();
        await outbox.EnqueueManyAsync(tx, events);
        if (throughOutbox)
            await outbox.CommitAsync(tx);
        else
            await tx.CommitAsync();
        return events;
    }

    private async Task EnqueueAsync(JobRejected message, bool commit, string? sendTo = null)
    {
        var outbox = _host.Get<MessageOutbox>();
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await using var tx = await connection.BeginTransactionAsync();
        await outbox.EnqueueAsync(tx, message, sendTo);
        if (commit)
        {
            await outbox.CommitAsync(tx);
        }
        else
        {
            await tx.RollbackAsync();
        }
    }

    /// <summary>Waits until the message's outbox row is marked sent (the relay marks it after the broker confirms).</summary>
    private async Task<OutboxRow> SentRowAsync(JobId jobId)
    {
        var row = await Eventually.UntilAsync(
            async () =>
            {
                await using var connection = await RunningHost.OpenDatabaseAsync(_env);
                return await connection.QuerySingleOrDefaultAsync<OutboxRow>(
                    """
                    select message_id as MessageId, message_type as MessageType, destination as Destination,
                           sent_at is not null as Sent, attempts as Attempts
                    from outbox where body->>'jobId' = @jobId
                    """, new { jobId = jobId.Value });
            },
            r => r is { Sent: true }, Timeout, $"the outbox row of {jobId} to be marked sent");
        Assert.Equal(1, row!.Attempts);
        return row;
    }

    private sealed record OutboxRow(Guid MessageId, string MessageType, string? Destination, bool Sent, int Attempts);
}

internal sealed record Delivery(string Queue, Guid? MessageId, JobRejected Message);

/// <summary>Every message the probe consumers received, in arrival order.</summary>
internal sealed class Deliveries
{
    private readonly ConcurrentQueue<Delivery> _received = new();

    public IReadOnlyList<Delivery> All => [.. _received];

    public void Add(ConsumeContext<JobRejected> context) =>
        _received.Enqueue(new Delivery(context.ReceiveContext.InputAddress.Segments[^1], context.MessageId, context.Message));

    /// <summary>Waits for the one delivery of the job's message (a second delivery fails the wait).</summary>
    public async Task<Delivery> WaitForAsync(JobId jobId, TimeSpan timeout)
    {
        var delivery = await Eventually.UntilAsync(
            () => Task.FromResult(All.SingleOrDefault(d => d.Message.JobId == jobId)),
            d => d is not null, timeout, $"{jobId} to be delivered");
        return delivery!;
    }
}

/// <summary>Every bundle of <see cref="JobFunded"/> the probe received, in arrival order.</summary>
internal sealed class Bundles
{
    private readonly ConcurrentQueue<IReadOnlyList<JobFunded>> _received = new();

    public IReadOnlyList<IReadOnlyList<JobFunded>> All => [.. _received];

    public void Add(IReadOnlyList<JobFunded> items) => _received.Enqueue(items);

    /// <summary>Waits for the one bundle that carries the job's event.</summary>
    public async Task<IReadOnlyList<JobFunded>> WaitForAsync(JobId jobId, TimeSpan timeout) =>
        (await Eventually.UntilAsync(
            () => Task.FromResult(All.SingleOrDefault(b => b.Any(e => e.JobId == jobId))),
            b => b is not null, timeout, $"the bundle with {jobId}"))!;
}

internal sealed class BundleProbeConsumer(Bundles bundles) : IConsumer<Bundle<JobFunded>>
{
    public Task Consume(ConsumeContext<Bundle<JobFunded>> context)
    {
        bundles.Add(context.Message.Items);
        return Task.CompletedTask;
    }
}

internal sealed class PublishedProbeConsumer(Deliveries deliveries) : IConsumer<JobRejected>
{
    public Task Consume(ConsumeContext<JobRejected> context)
    {
        deliveries.Add(context);
        return Task.CompletedTask;
    }
}

internal sealed class DirectProbeConsumer(Deliveries deliveries) : IConsumer<JobRejected>
{
    public Task Consume(ConsumeContext<JobRejected> context)
    {
        deliveries.Add(context);
        return Task.CompletedTask;
    }
}
