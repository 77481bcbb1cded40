using System.Diagnostics.Metrics;
using Platform.Hosting.Metrics;

namespace Platform.Gateway.Metrics;

/// <summary>
/// The gateway's metrics: jobs submitted, and each job's time from submission to its end by how it ended (the
/// histogram's count is the jobs ended, by kernel and status). Jobs still live are the scheduler's gauges.
/// </summary>
public static class GatewayMetrics
{
    private static readonly Counter<long> Submitted = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.jobs.submitted", "{job}", "Jobs accepted by the gateway");

    // Buckets for jobs from a few milliseconds (tiny jobs on an idle network) to an hour.
    private static readonly Histogram<double> Duration = PlatformMetrics.Meter.CreateHistogram(
        "platform.job.duration", "s", "From a job's submission to its end (completed, failed, cancelled), by kernel and how it ended",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600] });

    public static void JobsSubmitted(IEnumerable<string> kernels)
    {
        foreach (var kernel in kernels)
            Submitted.Add(1, new KeyValuePair<string, object?>("kernel", kernel));
    }

    /// <summary>Recorded once per job, by the instance whose update ended it (the update is conditional).</summary>
    public static void JobEnded(string kernel, string status, double seconds) =>
        // The end is stamped by the scheduler's clock, the start by the gateway's: a skew must not make it negative.
        Duration.Record(Math.Max(0, seconds), new KeyValuePair<string, object?>("kernel", kernel), new KeyValuePair<string, object?>("status", status));
}
