using System.Collections.Concurrent;
using Dapper;
using Npgsql;

namespace Platform.Rewards.Ledger;

/// <summary>
/// Operator accounts that are known to exist, so a settlement does not insert its operator's account every time.
/// That insert is cheap alone, but on a busy network it waits for the row lock of whichever settlement is paying
/// the same operator (the measured top wait of a settlement). An account is remembered only once an insert found
/// it already there, which means another transaction committed it; accounts are never deleted.
/// </summary>
public sealed class KnownAccounts
{
    private const int Capacity = 100_000;
    private readonly ConcurrentDictionary<string, bool> _known = new(StringComparer.Ordinal);

    /// <summary>Call at most once per account in a transaction: a row this transaction inserted is not yet known to survive.</summary>
    public async Task EnsureAsync(NpgsqlTransaction tx, string accountId, string kind, CancellationToken ct)
    {
        var key = $"{tx.Connection!.Database}/{accountId}";
        if (_known.ContainsKey(key))
            return;
        var inserted = await tx.Connection.ExecuteAsync(new CommandDefinition(
            "insert into accounts (id, kind) values (@accountId, @kind) on conflict (id) do nothing",
            new { accountId, kind }, tx, cancellationToken: ct));
        if (inserted == 0)
        {
            if (_known.Count >= Capacity)
                _known.Clear();
            _known[key] = true;
        }
    }
}
