using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Database;

/// <summary>
/// The loop of a reconciler that drives stuck work to an ending in batches (jobs past their deadline, escrows held too
/// long): every <c>interval</c>, once the database is migrated, it sweeps batch after batch while the last one found
/// work (a long outage can leave many), and a failed sweep is logged and tried again at the next tick, never stopping
/// the service.
/// </summary>
public static class Reconciling
{
    /// <param name="sweep">Handles one batch and returns how many items it ended.</param>
    /// <param name="afterBatch">Run after each batch that ended something (wake a dispatcher, say).</param>
    public static async Task RunAsync(TimeSpan interval, TimeProvider clock, DatabaseState database, Func<CancellationToken, Task<int>> sweep, Action? afterBatch,
        ILogger logger, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                while (database.Migrated && await sweep(stoppingToken) > 0)
                    afterBatch?.Invoke();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Reconciling sweep failed; trying again in {Interval}", interval);
            }
        }
    }
}
