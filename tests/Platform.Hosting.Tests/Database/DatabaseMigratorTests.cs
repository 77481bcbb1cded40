using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Hosting.Database;
using Platform.Testing;

namespace Platform.Hosting.Tests.Database;

/// <summary>The migrator on a plain host against the real Postgres: database creation, order, journal, concurrency.</summary>
public sealed class DatabaseMigratorTests : IAsyncLifetime
{
    // The shared migrations every service applies first.
    private static readonly string[] PlatformMigrations =
    [
        "platform/0001_outbox_inbox.sql",
        "platform/0002_outbox_relay_after.sql",
        "platform/0003_outbox_body_statistics.sql",
        "platform/0004_outbox_trace_parent.sql",
    ];

    private static readonly string[] Journal = [.. PlatformMigrations, "hostingtest/0001_widgets.sql", "hostingtest/0002_widget_colour.sql"];

    private TestEnvironment _env = null!;

    public async Task InitializeAsync() =>
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-migrator");

    public Task DisposeAsync() => _env.DisposeAsync().AsTask();

    [Fact]
    public async Task Missing_database_is_created_at_start()
    {
        var database = new NpgsqlConnectionStringBuilder(_env.PostgresConnectionStringFor(RunningHost.Service)).Database!;
        Assert.False(await DatabaseExistsAsync(database));

        await using var host = RunningHost.Build(_env);
        Assert.False(host.Migrated);
        await host.StartAsync();

        Assert.True(await DatabaseExistsAsync(database));
        Assert.True(host.Migrated);
    }

    [Fact]
    public async Task Platform_and_service_migrations_are_applied_in_order_and_journaled()
    {
        await using var host = await RunningHost.StartAsync(_env);

        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        var journal = (await connection.QueryAsync<(string Id, DateTime AppliedAt)>(
            "select id, applied_at from schema_migrations")).ToDictionary(r => r.Id, r => r.AppliedAt);
        Assert.Equal(Journal.Order(StringComparer.Ordinal), journal.Keys.Order(StringComparer.Ordinal));
        // Each migration commits in its own transaction, so applied_at follows the order they ran in.
        Assert.True(journal[Journal[0]] <= journal[Journal[1]] && journal[Journal[1]] <= journal[Journal[2]],
            $"journal out of order: {string.Join(", ", journal.OrderBy(r => r.Value).Select(r => r.Key))}");

        // The service's migrations ran once each, in file order, after the platform's outbox and inbox existed.
        Assert.Equal(
            [("0001_widgets", true), ("0002_widget_colour", true)],
            await TraceAsync(connection));
        var tables = (await connection.QueryAsync<string>(
            "select table_name from information_schema.tables where table_schema = 'public'")).ToHashSet();
        Assert.Superset(new HashSet<string> { "schema_migrations", "outbox", "inbox", "widgets", "migration_trace" }, tables);
        Assert.Equal("blue", await connection.ExecuteScalarAsync<string>(
            "insert into widgets (name) values ('first') returning colour"));
    }

    [Fact]
    public async Task Second_start_applies_nothing_new()
    {
        Dictionary<string, DateTime> first;
        await using (await RunningHost.StartAsync(_env))
        {
            first = await JournalAsync();
        }

        await using var again = await RunningHost.StartAsync(_env);

        Assert.True(again.Migrated);
        Assert.Equal(first, await JournalAsync());
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        Assert.Equal([("0001_widgets", true), ("0002_widget_colour", true)], await TraceAsync(connection));
    }

    [Fact]
    public async Task Two_instances_starting_together_against_a_new_database_apply_each_migration_once()
    {
        // Several fresh databases: each round races the existence check, CREATE DATABASE and the advisory lock anew.
        for (var round = 0; round < 4; round++)
        {
            var service = $"race{round}";
            await using var one = RunningHost.Build(_env, service: service);
            await using var two = RunningHost.Build(_env, service: service);

            await Task.WhenAll(one.StartAsync(), two.StartAsync());

            Assert.True(one.Migrated);
            Assert.True(two.Migrated);
            await using var connection = await RunningHost.OpenDatabaseAsync(_env, service);
            Assert.Equal(
                [.. PlatformMigrations, $"{service}/0001_widgets.sql", $"{service}/0002_widget_colour.sql"],
                await connection.QueryAsync<string>("""select id from schema_migrations order by id collate "C" """));
            Assert.Equal([("0001_widgets", true), ("0002_widget_colour", true)], await TraceAsync(connection));
        }
    }

    [Fact]
    public void Connection_string_without_a_database_targets_the_services_own_database()
    {
        var services = new ServiceCollection();
        services.AddPlatformDatabase("ledger", "Host=db.example;Username=app;Password=pw", typeof(RunningHost).Assembly);
        using var provider = services.BuildServiceProvider();

        var target = new NpgsqlConnectionStringBuilder(provider.GetRequiredService<DatabaseTarget>().ConnectionString);

        Assert.Equal(("platform_ledger", "db.example", "pw"), (target.Database, target.Host, target.Password));
        Assert.Equal(
            [.. PlatformMigrations, "ledger/0001_widgets.sql", "ledger/0002_widget_colour.sql"],
            provider.GetRequiredService<MigrationSet>().Migrations.Select(m => m.Id));
    }

    private async Task<bool> DatabaseExistsAsync(string database)
    {
        var admin = new NpgsqlConnectionStringBuilder(_env.Infrastructure.PostgresConnectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync();
        return await connection.ExecuteScalarAsync<bool>(
            "select exists(select 1 from pg_database where datname = @database)", new { database });
    }

    private async Task<Dictionary<string, DateTime>> JournalAsync()
    {
        await using var connection = await RunningHost.OpenDatabaseAsync(_env);
        return (await connection.QueryAsync<(string Id, DateTime AppliedAt)>("select id, applied_at from schema_migrations"))
            .ToDictionary(r => r.Id, r => r.AppliedAt);
    }

    private static async Task<List<(string Migration, bool OutboxPresent)>> TraceAsync(NpgsqlConnection connection) =>
        (await connection.QueryAsync<(string, bool)>("select migration, outbox_present from migration_trace order by seq")).ToList();
}
