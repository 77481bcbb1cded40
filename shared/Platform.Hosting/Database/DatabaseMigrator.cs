using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Platform.Hosting.Database;

/// <summary>
/// Creates the service's database if it is missing and applies its migrations, journaled in
/// <c>schema_migrations</c>, under an advisory lock so two instances starting together apply each once.
/// </summary>
public sealed class DatabaseMigrator(DatabaseTarget target, MigrationSet migrations, DatabaseState state, ILogger<DatabaseMigrator> logger) : IHostedService
{
    private const long LockKey = 0x506c6174666f726d; // "Platform"
    private static readonly TimeSpan StartupDeadline = TimeSpan.FromSeconds(60);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + StartupDeadline;
        while (true)
        {
            try
            {
                await CreateDatabaseIfMissingAsync(cancellationToken);
                await MigrateAsync(cancellationToken);
                state.MarkMigrated();
                return;
            }
            catch (NpgsqlException ex) when (DateTime.UtcNow < deadline && ex.IsTransient)
            {
                // Postgres may still be starting (compose, restarts): wait for it rather than crash-loop.
                logger.LogWarning("Database not reachable yet ({Message}); retrying", ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task CreateDatabaseIfMissingAsync(CancellationToken ct)
    {
        var database = new NpgsqlConnectionStringBuilder(target.ConnectionString).Database!;
        var admin = new NpgsqlConnectionStringBuilder(target.ConnectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync(ct);
        var exists = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select exists(select 1 from pg_database where datname = @database)", new { database }, cancellationToken: ct));
        if (exists)
            return;
        try
        {
            // Identifiers cannot be parameters; quote it the way Postgres does.
            await connection.ExecuteAsync(new CommandDefinition($"create database \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", cancellationToken: ct));
            logger.LogInformation("Created database {Database}", database);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Another instance created it between our check and our create.
        }
    }

    private async Task MigrateAsync(CancellationToken ct)
    {
        // Not from the pool: the migration lock is the session's, and pooled connections are not reset when returned
        // (DatabaseRegistration); a lock whose unlock failed ends with this session instead of riding a pooled one.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(target.ConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("select pg_advisory_lock(@LockKey)", new { LockKey }, cancellationToken: ct));
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "create table if not exists schema_migrations (id text primary key, applied_at timestamptz not null default now())", cancellationToken: ct));
            var applied = (await connection.QueryAsync<string>(new CommandDefinition("select id from schema_migrations", cancellationToken: ct))).ToHashSet();
            foreach (var migration in migrations.Migrations.Where(m => !applied.Contains(m.Id)))
            {
                await using var tx = await connection.BeginTransactionAsync(ct);
                await connection.ExecuteAsync(new CommandDefinition(migration.Sql, transaction: tx, cancellationToken: ct));
                await connection.ExecuteAsync(new CommandDefinition(
                    "insert into schema_migrations (id) values (@Id)", new { migration.Id }, tx, cancellationToken: ct));
                await tx.CommitAsync(ct);
                logger.LogInformation("Applied migration {Migration}", migration.Id);
            }
        }
        finally
        {
            await connection.ExecuteAsync(new CommandDefinition("select pg_advisory_unlock(@LockKey)", new { LockKey }, cancellationToken: CancellationToken.None));
        }
    }
}
