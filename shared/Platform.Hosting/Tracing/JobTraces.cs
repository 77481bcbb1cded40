using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using Platform.Contracts;

namespace Platform.Hosting.Tracing;

/// <summary>
/// Keeps one trace per job across the hops where many jobs share one piece of work: a batch of bundled events, a
/// dispatch pass, a group commit. While a scope is open, each job of it has a span of its own (a child of the job's
/// trace as the job's previous hop left it), and a message the outbox writes about that job (its <c>JobId</c>) carries
/// that span as its parent instead of the batch's. Without a scope, a message's parent is the current activity.
/// </summary>
public sealed class JobTraces : IDisposable
{
    private static readonly AsyncLocal<JobTraces?> CurrentScope = new();
    private static readonly ConcurrentDictionary<Type, PropertyInfo?> JobIdProperties = new();

    private readonly Dictionary<string, ActivityContext> _contexts = [];
    private readonly List<Activity> _spans = [];
    private readonly JobTraces? _outer;
    private readonly Activity? _current = Activity.Current;

    private JobTraces(JobTraces? outer) => _outer = outer;

    /// <summary>
    /// Opens a scope with a span named <paramref name="name"/> for each job whose trace is known (its W3C
    /// <c>traceparent</c>); the spans end when the scope is disposed. Jobs without a trace get no span and no parent.
    /// </summary>
    public static JobTraces Begin(string name, IEnumerable<(JobId JobId, string? TraceParent)> jobs)
    {
        var scope = new JobTraces(CurrentScope.Value);
        // Started, not made current: the work that follows belongs to the whole batch, not to its first job.
        foreach (var (jobId, traceParent) in jobs)
        {
            if (scope._contexts.ContainsKey(jobId.Value) || !ActivityContext.TryParse(traceParent, null, out var parent))
                continue;
            var span = PlatformTracing.Source.CreateActivity(name, ActivityKind.Consumer, parent);
            if (span is null)
            {
                // Not recorded here (sampled out, or no listener): the job's trace still goes on from its parent.
                scope._contexts[jobId.Value] = parent;
                continue;
            }
            span.SetTag(PlatformTracing.JobIdTag, jobId.Value);
            span.Start();
            scope._spans.Add(span);
            scope._contexts[jobId.Value] = span.Context;
        }
        Activity.Current = scope._current;
        CurrentScope.Value = scope;
        return scope;
    }

    /// <summary>The <c>traceparent</c> a message written now carries: its job's span in the open scope, else the current activity.</summary>
    public static string? TraceParentOf(object message)
    {
        if (CurrentScope.Value is { } scope && JobIdOf(message) is { } jobId)
        {
            for (var s = scope; s is not null; s = s._outer)
            {
                if (s._contexts.TryGetValue(jobId.Value, out var context))
                    return Format(context);
            }
        }
        return Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity.Id : null;
    }

    /// <summary>The job a message is about: its <c>JobId</c> property, if it has one.</summary>
    public static JobId? JobIdOf(object message) =>
        JobIdProperties.GetOrAdd(message.GetType(), t => t.GetProperty("JobId") is { } p && p.PropertyType == typeof(JobId) ? p : null)
            ?.GetValue(message) as JobId?;

    /// <summary>A context as a W3C <c>traceparent</c> header value.</summary>
    public static string Format(ActivityContext context) =>
        $"00-{context.TraceId.ToHexString()}-{context.SpanId.ToHexString()}-{((context.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? "01" : "00")}";

    public void Dispose()
    {
        foreach (var span in _spans)
            span.Stop();
        _spans.Clear();
        // Stopping a span makes its parent current (another trace's span): the batch's own activity is current again.
        Activity.Current = _current;
        if (CurrentScope.Value == this)
            CurrentScope.Value = _outer;
    }
}
