using Npgsql;

namespace Platform.Hosting.Database;

/// <summary>
/// Statements written as <see cref="NpgsqlBatchCommand"/>s, so that a caller with several can send them in one round
/// trip (one <see cref="NpgsqlBatch"/>), and a caller with one runs it alone the same way: one text for both.
/// </summary>
public static class Statements
{
    /// <summary>Runs <paramref name="command"/> alone in <paramref name="tx"/>; nothing when it is null (nothing to write).</summary>
    public static async Task ExecuteAsync(NpgsqlTransaction tx, NpgsqlBatchCommand? command, CancellationToken ct)
    {
        if (command is null)
            return;
        await using var batch = new NpgsqlBatch(tx.Connection, tx) { BatchCommands = { command } };
        await batch.ExecuteNonQueryAsync(ct);
    }
}
