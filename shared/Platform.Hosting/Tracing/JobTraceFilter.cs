using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.Contracts.Messages;

namespace Platform.Hosting.Tracing;

/// <summary>
/// Runs around every consumer. A message about one job puts its job id on the consumer's log lines and span. A batch
/// (<see cref="Batch{T}"/>) or a bundle (<see cref="Bundle{T}"/>) carries many jobs, each from its own trace: a
/// <see cref="JobTraces"/> scope gives each of them a span in its own trace (parents from each message's headers, or
/// from the bundle's <see cref="Bundle{T}.TraceParents"/>), which the messages written about it continue.
/// </summary>
public sealed class JobTraceFilter<T>(ILogger<JobTraceFilter<T>> logger) : IFilter<ConsumeContext<T>> where T : class
{
    // Built once per message type: how to read its jobs' trace parents, if it carries many jobs.
    private static readonly Func<T, IEnumerable<(JobId, string?)>>? ManyJobs = JobsReader();
    private static readonly string SpanName = $"consume {Describe(typeof(T))}";

    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        if (ManyJobs is not null)
        {
            using var traces = JobTraces.Begin(SpanName, ManyJobs(context.Message));
            await next.Send(context);
            return;
        }
        if (JobTraces.JobIdOf(context.Message) is { } jobId)
        {
            Activity.Current?.SetTag(PlatformTracing.JobIdTag, jobId.Value);
            using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = jobId.Value });
            await next.Send(context);
            return;
        }
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobTraces");

    private static Func<T, IEnumerable<(JobId, string?)>>? JobsReader()
    {
        var type = typeof(T);
        if (IsBundle(type, out var item))
            return Reader(nameof(BundleJobs), item);
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Batch<>))
        {
            var message = type.GetGenericArguments()[0];
            return IsBundle(message, out var bundled) ? Reader(nameof(BatchOfBundlesJobs), bundled) : Reader(nameof(BatchJobs), message);
        }
        return null;
    }

    private static bool IsBundle(Type type, out Type item)
    {
        item = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Bundle<>) ? type.GetGenericArguments()[0] : typeof(object);
        return item != typeof(object);
    }

    private static Func<T, IEnumerable<(JobId, string?)>> Reader(string method, Type item) =>
        (Func<T, IEnumerable<(JobId, string?)>>)typeof(JobTraceFilter<T>).GetMethod(method, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(item).CreateDelegate(typeof(Func<T, IEnumerable<(JobId, string?)>>));

    private static IEnumerable<(JobId, string?)> BundleJobs<TItem>(T message) where TItem : class =>
        Items((Bundle<TItem>)(object)message);

    private static IEnumerable<(JobId, string?)> BatchOfBundlesJobs<TItem>(T message) where TItem : class =>
        ((Batch<Bundle<TItem>>)(object)message).SelectMany(m => Items(m.Message));

    // Each message of a batch came with its own headers: MassTransit's W3C trace context (its sending activity's id, in
    // MT-Activity-Id; "traceparent" where a sender used the W3C header name).
    private static IEnumerable<(JobId, string?)> BatchJobs<TItem>(T message) where TItem : class =>
        ((Batch<TItem>)(object)message)
            .Select(m => (JobTraces.JobIdOf(m.Message), TraceParentOf(m.Headers)))
            .Where(m => m.Item1 is not null)
            .Select(m => (m.Item1!.Value, m.Item2));

    // A header that cannot be read (a node's, malformed) is no trace context: it must not fail the batch.
    private static string? TraceParentOf(Headers headers)
    {
        try
        {
            return headers.Get<string>("MT-Activity-Id") ?? headers.Get<string>("traceparent");
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or ArgumentException)
        {
            return null;
        }
    }

    private static IEnumerable<(JobId, string?)> Items<TItem>(Bundle<TItem> bundle) where TItem : class
    {
        if (bundle.TraceParents is not { } parents)
            yield break;
        for (var i = 0; i < bundle.Items.Count && i < parents.Count; i++)
        {
            if (JobTraces.JobIdOf(bundle.Items[i]) is { } jobId)
                yield return (jobId, parents[i]);
        }
    }

    private static string Describe(Type type) =>
        type.IsGenericType ? $"{type.Name[..type.Name.IndexOf('`')]}<{string.Join(",", type.GetGenericArguments().Select(Describe))}>" : type.Name;
}
