using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace Platform.Testing;

/// <summary>
/// Records every statement Npgsql sends to one database while it is alive, from Npgsql's own tracing (its
/// "Npgsql" ActivitySource): the real data source and the real round trips, only observed. Other tests' databases
/// (they run in parallel in this process) are told apart by the database name.
/// </summary>
public sealed class StatementCounter : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<string> _statements = new();

    public StatementCounter(NpgsqlDataSource database)
    {
        var name = new NpgsqlConnectionStringBuilder(database.ConnectionString).Database;
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.GetTagItem("db.namespace") as string == name && activity.GetTagItem("db.query.text") is string text)
                    _statements.Enqueue(text);
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>The statements sent so far, in the order they ended.</summary>
    public IReadOnlyList<string> Statements => [.. _statements];

    /// <summary>Forgets what was recorded so far.</summary>
    public void Clear() => _statements.Clear();

    /// <summary>How many statements so far mention <paramref name="fragment"/> (such as a table name).</summary>
    public int Mentioning(string fragment) => _statements.Count(s => s.Contains(fragment, StringComparison.OrdinalIgnoreCase));

    public void Dispose() => _listener.Dispose();
}
