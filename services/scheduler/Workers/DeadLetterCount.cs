using Platform.Hosting.Messaging;

namespace Platform.Scheduler.Workers;

/// <summary>
/// How many messages wait in the deployment's <c>_error</c> queues (dead letters each service replays by itself, or
/// parked after their replays: see <see cref="DeadLetterReconciler"/>), for the network view. Read from the broker's
/// management API (the one enrollment uses), whose counts are statistics a few seconds behind; kept for
/// <see cref="FreshFor"/> so a dashboard polled by many cannot make the broker count for each.
/// </summary>
public sealed class DeadLetterCount(IHttpClientFactory httpFactory, RabbitMqAddress broker, TimeProvider clock, ILogger<DeadLetterCount> logger)
{
    public const string HttpClientName = "broker-management";
    private static readonly TimeSpan FreshFor = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _reading = new(1, 1);
    private (long? Count, DateTimeOffset At) _last = (null, DateTimeOffset.MinValue);

    private sealed record QueueDepth(string Name, long? Messages);

    /// <summary>The count, or null when the management API could not be read.</summary>
    public async Task<long?> GetAsync(CancellationToken ct)
    {
        if (clock.GetUtcNow() - _last.At < FreshFor)
            return _last.Count;
        await _reading.WaitAsync(ct);
        try
        {
            if (clock.GetUtcNow() - _last.At < FreshFor)
                return _last.Count;
            long? count = null;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                var queues = await httpFactory.CreateClient(HttpClientName).GetFromJsonAsync<List<QueueDepth>>(
                    $"api/queues/{Uri.EscapeDataString(broker.VirtualHost)}?columns=name,messages", timeout.Token);
                count = queues!.Where(q => q.Name.EndsWith(DeadLetterReconciler.ErrorSuffix, StringComparison.Ordinal)).Sum(q => q.Messages ?? 0);
            }
            catch (Exception e) when (e is HttpRequestException or System.Text.Json.JsonException || e is OperationCanceledException && !ct.IsCancellationRequested)
            {
                logger.LogWarning("Dead letters not counted: the broker's management API did not answer ({Error})", e.Message);
            }
            _last = (count, clock.GetUtcNow());
            return count;
        }
        finally
        {
            _reading.Release();
        }
    }
}
