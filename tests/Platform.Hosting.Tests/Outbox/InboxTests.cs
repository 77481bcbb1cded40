using Dapper;
using Platform.Hosting.Outbox;
using Platform.Testing;

namespace Platform.Hosting.Tests.Outbox;

/// <summary>The inbox table the platform migration creates, written through <see cref="Inbox"/> on a real Postgres.</summary>
public sealed class InboxTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private RunningHost _host = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-inbox");
        _host = await RunningHost.StartAsync(_env);
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    [Fact]
    public async Task Same_message_is_recorded_once_per_consumer()
    {
        var messageId = Guid.NewGuid();

        Assert.True(await RecordAsync("escrow", messageId));
        Assert.False(await RecordAsync("escrow", messageId));
        Assert.True(await RecordAsync("payouts", messageId));
        Assert.False(await RecordAsync("payouts", messageId));
        Assert.True(await RecordAsync("escrow", Guid.NewGuid()));
    }

    [Fact]
    public async Task Second_record_in_the_same_transaction_is_refused()
    {
        var messageId = Guid.NewGuid();
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await using var tx = await connection.BeginTransactionAsync();

        Assert.True(await Inbox.TryRecordAsync(tx, "escrow", messageId));
        Assert.False(await Inbox.TryRecordAsync(tx, "escrow", messageId));
        await tx.CommitAsync();
    }

    [Fact]
    public async Task Record_rolled_back_with_its_effect_does_not_count()
    {
        var messageId = Guid.NewGuid();

        Assert.True(await RecordAsync("escrow", messageId, commit: false));

        Assert.True(await RecordAsync("escrow", messageId));
        Assert.False(await RecordAsync("escrow", messageId));
    }

    [Fact]
    public async Task Message_without_an_id_is_never_treated_as_seen()
    {
        Assert.True(await RecordAsync("escrow", null));
        Assert.True(await RecordAsync("escrow", null));

        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("select count(*) from inbox"));
    }

    private async Task<bool> RecordAsync(string consumer, Guid? messageId, bool commit = true)
    {
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await using var tx = await connection.BeginTransactionAsync();
        var recorded = await Inbox.TryRecordAsync(tx, consumer, messageId);
        if (commit)
        {
            await tx.CommitAsync();
        }
        else
        {
            await tx.RollbackAsync();
        }

        return recorded;
    }
}
