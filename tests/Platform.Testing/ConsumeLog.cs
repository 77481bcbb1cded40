using MassTransit;
using Platform.Contracts.Messages;
using Xunit;

namespace Platform.Testing;

/// <summary>
/// Every consume on a test host's bus and how it ended, handled or faulted: one entry per delivery to a consumer.
/// The harness's <c>Consumed</c> list is no proof of handling: it holds a delivery whose consumer threw as well
/// (only its <c>Exception</c> tells), and keeps one entry per message id, so a second delivery of the same id
/// is not there at all.
/// </summary>
public sealed class ConsumeLog : IConsumeObserver
{
    /// <summary>How long a wait for a delivery lasts: as long as the harness's own test timeout.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public sealed record Entry(ConsumeContext Context, Type MessageType, Exception? Exception)
    {
        public override string ToString() =>
            $"{MessageType.Name} {Context.MessageId} on {Context.ReceiveContext.InputAddress}: {Exception?.GetType().Name} {Exception?.Message}";
    }

    private readonly List<Entry> _entries = [];
    private TaskCompletionSource _added = new(TaskCreationOptions.RunContinuationsAsynchronously);

    Task IConsumeObserver.PreConsume<T>(ConsumeContext<T> context) => Task.CompletedTask;

    Task IConsumeObserver.PostConsume<T>(ConsumeContext<T> context)
    {
        Add(new Entry(context, typeof(T), null));
        return Task.CompletedTask;
    }

    Task IConsumeObserver.ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
    {
        Add(new Entry(context, typeof(T), exception));
        return Task.CompletedTask;
    }

    private void Add(Entry entry)
    {
        TaskCompletionSource added;
        lock (_entries)
        {
            _entries.Add(entry);
            added = _added;
            _added = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        added.SetResult();
    }

    /// <summary>The deliveries whose consumer threw, so far.</summary>
    public IReadOnlyList<Entry> Faults
    {
        get
        {
            lock (_entries)
                return [.. _entries.Where(e => e.Exception is not null)];
        }
    }

    /// <summary>Fails unless every consume so far ended without an exception.</summary>
    public void AssertNoConsumerFaulted() => AssertNone(Faults);

    internal static void AssertNone(IReadOnlyList<Entry> faults)
    {
        if (faults.Count > 0)
            Assert.Fail($"{faults.Count} consume(s) faulted; a message a consumer throws on is retried and dead-lettered in production:\n"
                + string.Join("\n", faults.Select(f => $"{f}\n{f.Exception}")));
    }

    /// <summary>
    /// Waits until <paramref name="count"/> deliveries of <typeparamref name="T"/> that <paramref name="filter"/> accepts were
    /// handled, and fails as soon as one of them faulted, or when they were not all handled within <paramref name="timeout"/>.
    /// Returns the messages of those deliveries.
    /// </summary>
    public Task<IReadOnlyList<T>> HandledAsync<T>(Func<ConsumeContext<T>, bool> filter, int count = 1, TimeSpan? timeout = null) where T : class =>
        WaitAsync<T>(e => e.Context is ConsumeContext<T> c && e.MessageType == typeof(T) && filter(c) ? [c.Message] : [], typeof(T).Name, count, timeout);

    /// <summary>
    /// Like <see cref="HandledAsync{T}"/> for an event that travels in bundles (<see cref="BundledAttribute"/>): waits until
    /// <paramref name="count"/> items that <paramref name="filter"/> accepts were handled, counting every item of every bundle.
    /// </summary>
    public Task<IReadOnlyList<T>> HandledItemsAsync<T>(Func<T, bool> filter, int count = 1, TimeSpan? timeout = null) where T : class =>
        WaitAsync<T>(e => e.Context is ConsumeContext<Bundle<T>> c && e.MessageType == typeof(Bundle<T>) ? c.Message.Items.Where(filter) : [],
            $"{typeof(T).Name} (bundled)", count, timeout);

    private async Task<IReadOnlyList<T>> WaitAsync<T>(Func<Entry, IEnumerable<T>> matches, string name, int count, TimeSpan? timeout)
    {
        var wait = timeout ?? DefaultTimeout;
        var deadline = DateTimeOffset.UtcNow + wait;
        while (true)
        {
            List<(Entry Entry, T Message)> matching;
            Task added;
            lock (_entries)
            {
                matching = [.. _entries.SelectMany(e => matches(e).Select(m => (e, m)))];
                added = _added.Task;
            }
            if (matching.FirstOrDefault(m => m.Entry.Exception is not null).Entry is { } faulted)
                Assert.Fail($"the {name} consumer faulted (in production the message is retried and dead-lettered): {faulted}\n{faulted.Exception}");
            if (matching.Count >= count)
                return [.. matching.Select(m => m.Message)];
            var left = deadline - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero)
                Assert.Fail($"{matching.Count} of {count} {name} deliveries handled within {wait.TotalSeconds:0.#} s");
            try
            {
                // Woken by the next delivery, not by a timer; the deadline only bounds the wait.
                await added.WaitAsync(left);
            }
            catch (TimeoutException)
            {
                // The deadline check above fails the test on the next turn.
            }
        }
    }
}
