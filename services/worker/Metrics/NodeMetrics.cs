using System.Diagnostics.Metrics;
using Platform.Contracts.Messages;
using Platform.Hosting.Metrics;

namespace Platform.Worker.Metrics;

/// <summary>
/// A node's own metrics: its attempts and how they ended, the work and energy of those it completed, their speed, and
/// its slots in use. What the node says about itself: the network believes only what it measures (scheduler metrics).
/// </summary>
public static class NodeMetrics
{
    private static readonly Counter<long> Attempts = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.node.attempts", "{attempt}", "Attempts this node ran, by kernel and outcome (completed, failed, cancelled)");

    private static readonly Counter<double> Gflop = PlatformMetrics.Meter.CreateCounter<double>(
        "platform.node.gflop", "{gflop}", "Work of the attempts this node completed");

    private static readonly Counter<double> Joules = PlatformMetrics.Meter.CreateCounter<double>(
        "platform.node.joules", "{joule}", "Energy of the attempts this node completed (measured or estimated)");

    private static readonly Histogram<double> Speed = PlatformMetrics.Meter.CreateHistogram(
        "platform.node.gflops", "{gflop}/s", "Speed of each completed attempt",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000] });

    /// <summary>Slots in use and in all: read when scraped.</summary>
    public static void ObserveSlots(Func<int> used, int slots)
    {
        PlatformMetrics.Meter.CreateObservableGauge("platform.node.slots.used", used, "{attempt}", "Attempts running on this node");
        PlatformMetrics.Meter.CreateObservableGauge("platform.node.slots", () => slots, "{slot}", "Slots this node offers");
    }

    public static void Completed(string kernel, AttemptMetrics metrics)
    {
        var tag = new KeyValuePair<string, object?>("kernel", kernel);
        Attempts.Add(1, tag, new KeyValuePair<string, object?>("outcome", "completed"));
        Gflop.Add(metrics.Gflop, tag);
        if (metrics.Joules is { } joules)
            Joules.Add(joules, tag);
        if (metrics.DurationMs > 0)
            Speed.Record(metrics.Gflop / (metrics.DurationMs / 1000), tag);
    }

    public static void Ended(string kernel, string outcome) =>
        Attempts.Add(1, new KeyValuePair<string, object?>("kernel", kernel), new KeyValuePair<string, object?>("outcome", outcome));
}
