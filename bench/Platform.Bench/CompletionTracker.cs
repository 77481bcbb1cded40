using System.Collections.Concurrent;
using Dapper;
using Npgsql;

namespace Platform.Bench;

/// <summary>
/// Which submitted jobs have reached a terminal status, read from the gateway's read model by primary key:
/// every 250 ms one query looks up the still-outstanding ids only (never a scan of the whole jobs table), so
/// the cost of watching stays proportional to the jobs in flight, not to the jobs ever run.
/// </summary>
public sealed class CompletionTracker : IAsyncDisposable
{
    /// <summary>Marks the benchmark's own statements, so the statement report can leave them out.</summary>
    public const string Marker = "/* bench */";

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentDictionary<string, byte> outstanding = new();
    private readonly NpgsqlConnection db;
    private readonly SemaphoreSlim pollLock = new(1, 1);
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;
    private TaskCompletionSource progressed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int completed;
    private int submitted;
    private int otherTerminal;
    private long polls;

    public CompletionTracker(string gatewayConnectionString)
    {
        db = new NpgsqlConnection(gatewayConnectionString);
        loop = Task.Run(LoopAsync);
    }

    /// <summary>Jobs that reached 'completed'.</summary>
    public int Completed => Volatile.Read(ref completed);

    /// <summary>Jobs that reached another terminal status (failed, cancelled, rejected).</summary>
    public int OtherTerminal => Volatile.Read(ref otherTerminal);

    /// <summary>Submitted jobs not yet seen terminal.</summary>
    public int Outstanding => outstanding.Count;

    /// <summary>Queries (= transactions in the gateway's database) the tracker has made, to subtract from its commit count.</summary>
    public long Polls => Interlocked.Read(ref polls);

    /// <summary>Completes after the next poll: a submitter waiting for room in a closed loop waits on it.</summary>
    public Task Progressed => Volatile.Read(ref progressed).Task;

    /// <summary>Jobs handed to <see cref="Add"/>: every job the gateway accepted.</summary>
    public int Submitted => Volatile.Read(ref submitted);

    public void Add(string id)
    {
        outstanding.TryAdd(id, 0);
        Interlocked.Increment(ref submitted);
    }

    /// <summary>Looks up the outstanding ids now (serialised with the background poll).</summary>
    public async Task PollAsync()
    {
        await pollLock.WaitAsync();
        try
        {
            var ids = outstanding.Keys.ToArray();
            if (ids.Length > 0)
            {
                var terminal = await db.QueryAsync<(string Id, string Status)>(
                    Marker + " select id, status from jobs where id = any(@ids) and status_rank = 10", new { ids });
                Interlocked.Increment(ref polls);
                foreach (var (id, status) in terminal)
                {
                    if (outstanding.TryRemove(id, out _))
                    {
                        Interlocked.Increment(ref status == "completed" ? ref completed : ref otherTerminal);
                    }
                }
            }
        }
        finally
        {
            pollLock.Release();
        }

        Interlocked.Exchange(ref progressed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>Waits until every submitted job is terminal.</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (Outstanding > 0)
        {
            try
            {
                await Progressed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{Outstanding} jobs were still not terminal after {timeout.TotalSeconds:N0} s");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await loop;
        await db.DisposeAsync();
        stop.Dispose();
        pollLock.Dispose();
    }

    private async Task LoopAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await PollAsync();
            }
            catch (NpgsqlException e)
            {
                Console.Error.WriteLine($"completion poll failed, retrying: {e.Message}");
            }

            try
            {
                await Task.Delay(Interval, stop.Token); // the polling period
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }
}
