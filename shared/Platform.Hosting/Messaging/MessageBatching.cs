using MassTransit;
using Platform.Contracts.Messages;

namespace Platform.Hosting.Messaging;

/// <summary>
/// How a batch consumer gathers its messages: a batch is handed over when it holds <see cref="MessageLimit"/>
/// messages or when no further message has come for <see cref="Quiet"/>; at most <see cref="ConcurrencyLimit"/>
/// batches of the consumer run at once.
/// </summary>
/// <remarks>
/// The quiet period counts from the batch's last message, not from its first (MassTransit's default). Under load
/// messages follow each other within the quiet period and batches fill up to their limit; a lone message on a quiet
/// network waits only the quiet period before it is handled. Counted from the first message, every batched hop held
/// a lone job for the whole time limit (5 ms, measured at 6 to 13 ms from publish to consume against 2.5 ms for a
/// consumer without batches), and a job crosses several such hops.
/// </remarks>
public sealed record MessageBatching(int MessageLimit, TimeSpan Quiet, int ConcurrencyLimit)
{
    /// <summary>
    /// Long enough for messages published together (an outbox relay's batch) to land in one batch. MassTransit's timer
    /// makes it a wait of about 3 ms per batched hop for a lone message; 0.1 ms cut that to under 1 ms but split bursts
    /// (40 submissions published at once reached the rewards' escrow in 25 batches), so 1 ms it stays (bench/README.md,
    /// issue 18 session 25).
    /// </summary>
    public static readonly TimeSpan DefaultQuiet = TimeSpan.FromMilliseconds(1);

    public void Configure(BatchOptions options) => options
        .SetMessageLimit(MessageLimit)
        .SetTimeLimit(Quiet)
        .SetTimeLimitStart(BatchTimeLimitStart.FromLast)
        .SetConcurrencyLimit(ConcurrencyLimit);
}

/// <summary>Reads a batch of bundles (<see cref="Bundle{T}"/>) as the events they carry.</summary>
public static class BundleBatches
{
    /// <summary>Every item of every bundle, bundle by bundle in the batch's order and each bundle's own.</summary>
    public static IEnumerable<T> Items<T>(this Batch<Bundle<T>> batch) where T : class =>
        batch.SelectMany(m => m.Message.Items);
}
