using System.Collections.Concurrent;
using Npgsql;

namespace Platform.Gateway.Jobs;

/// <summary>
/// Wakes the event streams of a job (or of its batch) when the read model changed it, so an idle stream costs no
/// database reads: the view's transactions <c>NOTIFY job_changes</c> with the ids of the jobs they changed and of their
/// batches (<see cref="NotifySql"/>), and
/// every gateway instance LISTENs on one connection of its own. A stream still reads the log now and then
/// (<see cref="JobEventStream"/>'s fallback) in case a notification was lost while the listening connection was down.
/// </summary>
public sealed class JobChangeSignal(NpgsqlDataSource db, ILogger<JobChangeSignal> logger) : BackgroundService
{
    public const string Channel = "job_changes";

    /// <summary>
    /// In a view transaction: notifies listeners, on commit, of the jobs in <c>@changedJobs</c> (text[]) and of the
    /// batches they belong to (a batch's stream watches its batch id). Sent in notifications of 200 ids at most, as
    /// a payload may not exceed 8,000 bytes.
    /// </summary>
    public const string NotifySql = $"""
        select pg_notify('{Channel}', string_agg(id, ',')) from (
            select id, (row_number() over () - 1) / 200 as part from (
                select unnest(@changedJobs::text[]) as id
                union
                select batch_id from jobs where id = any(@changedJobs::text[]) and batch_id is not null) ids) numbered
        group by part
        """;

    private static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(1);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _watched = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once this instance first listens: notifications committed before it are not seen.</summary>
    public Task Listening => _listening.Task;

    /// <summary>
    /// Completes at the next change of <paramref name="jobId"/> (or of any job of the batch, given a batch id) after this call. Take it before reading the log, then
    /// wait on it: a change committed between the read and the wait still wakes the stream.
    /// </summary>
    public Task Watch(string jobId) =>
        _watched.GetOrAdd(jobId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>
    /// Drops the watch a stream that ends leaves behind (the job may never change again). Another stream of the same
    /// job waiting on it falls back to reading the log on its interval.
    /// </summary>
    public void Forget(string jobId, Task watch)
    {
        if (_watched.TryGetValue(jobId, out var waiting) && waiting.Task == watch)
            _watched.TryRemove(KeyValuePair.Create(jobId, waiting));
    }

    internal void Changed(string jobId)
    {
        if (_watched.TryRemove(jobId, out var waiting))
            waiting.TrySetResult();
    }

    private void ChangedAll()
    {
        foreach (var jobId in _watched.Keys)
            Changed(jobId);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await db.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, e) =>
                {
                    foreach (var jobId in e.Payload.Split(',', StringSplitOptions.RemoveEmptyEntries))
                        Changed(jobId);
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                _listening.TrySetResult();
                // Whatever changed while nobody listened: every stream reads the log once more.
                ChangedAll();
                while (!stoppingToken.IsCancellationRequested)
                    await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException)
            {
                logger.LogWarning("Listening for job changes failed ({Error}); event streams read the log on their fallback interval until it is back",
                    ex.Message);
                ChangedAll();
                await Task.Delay(Reconnect, stoppingToken);
            }
        }
    }
}
