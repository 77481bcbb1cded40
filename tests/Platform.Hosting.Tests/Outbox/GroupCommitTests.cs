using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Testing;

namespace Platform.Hosting.Tests.Outbox;

/// <summary>
/// A batch is one transaction; a batch with a failing message falls back to one transaction per message, so the others
/// still take effect and only the failure is rethrown. Real Postgres; each handler writes a row and queues a message.
/// </summary>
public sealed class GroupCommitTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private RunningHost _host = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-group-commit");
        // The relay is not running: the messages stay in the outbox, where the test counts them.
        _host = await RunningHost.StartAsync(_env, services => services.AddSingleton(new MessageOutbox(Microsoft.Extensions.Options.Options.Create(new OutboxOptions()))));
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        await connection.ExecuteAsync("create table group_commit_probe (id text primary key)");
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _env.DisposeAsync();
    }

    private Func<NpgsqlTransaction, string, Task> Handler(MessageOutbox outbox, string? failing = null) => async (tx, id) =>
    {
        await tx.Connection!.ExecuteAsync("insert into group_commit_probe (id) values (@id)", new { id }, tx);
        await outbox.EnqueueAsync(tx, new JobFunded { JobId = JobId.From(id), Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow });
        if (id == failing)
            throw new InvalidOperationException($"message {id} cannot be handled");
    };

    private async Task<(int Rows, int Transactions, int Messages)> WrittenAsync(IReadOnlyList<string> ids)
    {
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        var txids = (await connection.QueryAsync<string>("select xmin::text from group_commit_probe where id = any(@ids)", new { ids = ids.ToArray() })).ToList();
        var messages = await connection.ExecuteScalarAsync<int>("select count(*) from outbox where body->>'jobId' = any(@ids)", new { ids = ids.ToArray() });
        return (txids.Count, txids.Distinct().Count(), messages);
    }

    private static List<string> Ids() => Enumerable.Range(0, 10).Select(_ => JobId.New().Value).ToList();

    [Fact]
    public async Task A_batch_is_written_by_one_transaction()
    {
        var outbox = _host.Get<MessageOutbox>();
        var ids = Ids();

        var outcome = await GroupCommit.HandleAsync(_host.Get<NpgsqlDataSource>(), outbox, ids, Handler(outbox), CancellationToken.None);

        Assert.Equal(new GroupCommit.Outcome(1, false), outcome);
        Assert.Equal((10, 1, 10), await WrittenAsync(ids));
    }

    [Fact]
    public async Task A_failing_message_leaves_the_rest_of_its_batch_written_and_its_own_error_thrown()
    {
        var outbox = _host.Get<MessageOutbox>();
        var ids = Ids();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            GroupCommit.HandleAsync(_host.Get<NpgsqlDataSource>(), outbox, ids, Handler(outbox, failing: ids[4]), CancellationToken.None));

        Assert.Equal($"message {ids[4]} cannot be handled", error.Message);
        // Nine rows and their nine messages, each in a transaction of its own; nothing of the failing one.
        Assert.Equal((9, 9, 9), await WrittenAsync(ids));
        Assert.Equal((0, 0, 0), await WrittenAsync([ids[4]]));
    }
}
