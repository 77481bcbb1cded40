namespace Platform.Contracts.Messages;

/// <summary>
/// How the services send the events a job raises at every stage (<see cref="BundledAttribute"/>): one broker
/// message carries every such event of one type that an outbox relay sends together, so a batch of jobs crosses a
/// hop as one message instead of one message per job. A lone event travels as a bundle of one: one path for one
/// and for many. Each item stays the event the contract describes; consumers take the items in order.
/// </summary>
/// <remarks>
/// A bundle has no identity of its own: the relay may send an item again in another bundle (after a failed send
/// or a crash), so every consumer of a bundled event is idempotent per item, never per broker message.
/// </remarks>
public sealed record Bundle<T> where T : class
{
    public required IReadOnlyList<T> Items { get; init; }

    /// <summary>
    /// Each item's W3C trace context (<c>traceparent</c>), in the items' order: the items come from many traces (one
    /// per job), which the broker message's own headers cannot carry. Optional; a null entry is an item without one.
    /// </summary>
    public IReadOnlyList<string?>? TraceParents { get; init; }
}

/// <summary>Builds bundles (a test's or a tool's bundle of one).</summary>
public static class Bundle
{
    public static Bundle<T> Of<T>(params T[] items) where T : class => new() { Items = items };
}

/// <summary>
/// Marks an event that travels only in a <see cref="Bundle{T}"/>: the outbox relay wraps it, and its consumers consume
/// the bundle. Given to the per-job events of the hot path, which every job raises and which are consumed in batches.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class BundledAttribute : Attribute
{
    public static bool IsOn(Type type) => type.IsDefined(typeof(BundledAttribute), inherit: false);
}
