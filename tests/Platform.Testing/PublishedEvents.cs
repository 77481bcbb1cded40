using MassTransit.Testing;
using Platform.Contracts.Messages;

namespace Platform.Testing;

/// <summary>
/// The harness's view of published events that travel in bundles (<see cref="BundledAttribute"/>): it records
/// <see cref="Bundle{T}"/> messages, and a test asks about the events inside them.
/// </summary>
public static class PublishedEvents
{
    /// <summary>True once an event <paramref name="filter"/> accepts was published, in whatever bundle; waits like <c>Published.Any</c>.</summary>
    public static Task<bool> AnyPublished<T>(this ITestHarness harness, Func<T, bool> filter) where T : class =>
        harness.Published.Any<Bundle<T>>(m => m.Context.Message.Items.Any(filter));

    /// <summary>The first published event <paramref name="filter"/> accepts; waits for it like <c>Published.SelectAsync</c>.</summary>
    public static async Task<T> FirstPublishedAsync<T>(this ITestHarness harness, Func<T, bool> filter) where T : class =>
        (await harness.Published.SelectAsync<Bundle<T>>(m => m.Context.Message.Items.Any(filter)).First()).Context.Message.Items.First(filter);
}
