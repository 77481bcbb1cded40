using System.Diagnostics;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Platform.Hosting.Database;
using Platform.Rewards.Ledger;
using Platform.Testing;

namespace Platform.Bench;

/// <summary>
/// Ledger transactions per second through <see cref="CreditLedger.PostAsync"/> (escrow-like: a client account pays
/// sys:escrow, with the idempotency check, the balance row update and its non-negative check), beside plain
/// INSERTs of the same rows (a transaction and its two postings, one statement, no checks, no balance update) into
/// the same tables on the same Postgres in the same run. Each is one database transaction and commit per ledger
/// transaction, from several connections at once. Target: the ledger at least 0.5x the plain inserts.
/// </summary>
public static class LedgerBenchmark
{
    private const int Connections = 8;
    private const int Accounts = 64;
    private const int Rounds = 3;
    private const double Target = 0.5;
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Measure = TimeSpan.FromSeconds(4);

    private const string PlainInsert = """
        with t as (insert into transactions (idempotency_key, job_id) values (@key, @jobId) returning id)
        insert into postings (transaction_id, account_id, kind, amount)
        select t.id, x.account_id, 'escrow', x.amount from t, unnest(@accounts::text[], @amounts::numeric[]) as x(account_id, amount)
        """;

    public static async Task RunAsync()
    {
        Console.WriteLine($"== ledger: CreditLedger.PostAsync beside plain INSERTs of the same rows, {Connections} connections, same Postgres, same run ==");
        var infrastructure = await PlatformInfrastructure.GetAsync();
        await using var env = await infrastructure.CreateEnvironmentAsync("bench_ledger");
        // The rewards service's own migrations, applied the way the service applies them.
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPlatformDatabase("rewards", env.PostgresConnectionStringFor("rewards"), typeof(CreditLedger).Assembly);
        using var host = builder.Build();
        await host.StartAsync();
        var db = host.Services.GetRequiredService<NpgsqlDataSource>();

        var clients = Enumerable.Range(0, Accounts).Select(i => $"acc_bench_{i:D3}").ToArray();
        await using (var connection = await db.OpenConnectionAsync())
        await using (var tx = await connection.BeginTransactionAsync())
        {
            foreach (var client in clients)
            {
                await CreditLedger.EnsureAccountAsync(tx, client, "client", default);
                await CreditLedger.PostAsync(tx, $"grant:{client}", null,
                    [new Posting(CreditLedger.Mint, "grant", -1_000_000_000m), new Posting(client, "grant", 1_000_000_000m)], default);
            }
            await tx.CommitAsync();
        }

        // One unmeasured round of each first: the first seconds against a fresh database run slow (JIT, cold
        // caches, the tables' first pages) and would flatter whichever side runs second.
        await RateAsync(db, "warm-plain", PlainAsync);
        await RateAsync(db, "warm-ledger", LedgerAsync);
        var ledgerRates = new List<double>();
        var plainRates = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            plainRates.Add(await RateAsync(db, $"plain{round}", PlainAsync));
            ledgerRates.Add(await RateAsync(db, $"ledger{round}", LedgerAsync));
            Console.WriteLine($"round {round + 1}: plain inserts {plainRates[^1],8:N0} tx/s   ledger {ledgerRates[^1],8:N0} tx/s   ratio {ledgerRates[^1] / plainRates[^1]:0.00}x");
        }

        await using (var connection = await db.OpenConnectionAsync())
        {
            // The ledger's invariants held throughout (the plain rows balance too: each moves 1 credit).
            var unbalanced = await connection.ExecuteScalarAsync<long>("select count(*) from (select transaction_id from postings group by transaction_id having sum(amount) <> 0) t");
            var negative = await connection.ExecuteScalarAsync<long>("select count(*) from accounts where balance < 0 and kind <> 'mint'");
            if (unbalanced != 0 || negative != 0)
                throw new InvalidOperationException($"ledger invariants broken: {unbalanced} unbalanced transactions, {negative} negative balances");
        }

        var ledger = Median(ledgerRates);
        var plain = Median(plainRates);
        var ratio = ledger / plain;
        Console.WriteLine();
        Console.WriteLine("| figure | result |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| plain INSERTs (transaction + 2 postings, one statement) | {plain:N0} tx/s |");
        Console.WriteLine($"| CreditLedger.PostAsync (escrow-like) | {ledger:N0} tx/s |");
        Console.WriteLine($"| ratio (median of {Rounds} rounds) | {ratio:0.00}x (target {Target}x: {(ratio >= Target ? "met" : "NOT met")}) |");
        await host.StopAsync();
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private delegate Task TransactionAsync(NpgsqlConnection connection, string key, string client);

    private static Task PlainAsync(NpgsqlConnection connection, string key, string client) =>
        InTransactionAsync(connection, tx => connection.ExecuteAsync(new CommandDefinition(PlainInsert,
            new { key, jobId = key, accounts = new[] { client, CreditLedger.Escrow }, amounts = new[] { -1m, 1m } }, tx)));

    private static Task LedgerAsync(NpgsqlConnection connection, string key, string client) =>
        InTransactionAsync(connection, tx => CreditLedger.PostAsync(tx, key, key,
            [new Posting(client, "escrow", -1m), new Posting(CreditLedger.Escrow, "escrow", 1m)], default));

    private static async Task InTransactionAsync(NpgsqlConnection connection, Func<NpgsqlTransaction, Task> work)
    {
        await using var tx = await connection.BeginTransactionAsync();
        await work(tx);
        await tx.CommitAsync();
    }

    /// <summary>Warms up, then counts committed transactions from all connections for a fixed time.</summary>
    private static async Task<double> RateAsync(NpgsqlDataSource db, string run, TransactionAsync transaction)
    {
        long counted = 0;
        var measuring = false;
        var stop = false;
        var workers = Enumerable.Range(0, Connections).Select(worker => Task.Run(async () =>
        {
            await using var connection = await db.OpenConnectionAsync();
            // Each connection pays from its own accounts, as independent clients would: contention on one balance
            // row is the concurrency test's subject, not this one's.
            var own = Enumerable.Range(0, Accounts).Where(a => a % Connections == worker).Select(a => $"acc_bench_{a:D3}").ToArray();
            for (var i = 0; !Volatile.Read(ref stop); i++)
            {
                await transaction(connection, $"{run}:{worker}:{i}", own[i % own.Length]);
                if (Volatile.Read(ref measuring))
                    Interlocked.Increment(ref counted);
            }
        })).ToList();
        await Task.Delay(Warmup); // warm-up length, not a wait for a condition
        Volatile.Write(ref measuring, true);
        var clock = Stopwatch.StartNew();
        await Task.Delay(Measure); // the measuring window
        var elapsed = clock.Elapsed;
        var total = Interlocked.Read(ref counted);
        Volatile.Write(ref stop, true);
        await Task.WhenAll(workers);
        return total / elapsed.TotalSeconds;
    }
}
