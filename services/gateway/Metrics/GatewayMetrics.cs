using System.Diagnostics.Metrics;
using Platform.Hosting.Metrics;

namespace Platform.Gateway.Metrics;

/// <summary>The gateway's metrics: jobs by state and kernel (its read model), submissions, and submit-to-end times.</summary>
public static class GatewayMetrics
{
    private static readonly Counter<long> Submitted = PlatformMetrics.Meter.CreateCounter<long>(
        "platform.jobs.submitted", "{job}", "Jobs accepted by the gateway");

    // Buckets for jobs from a few milliseconds (tiny jobs on an idle network) to an hour.
    private static readonly Histogram<double> Duration = PlatformMetrics.Meter.CreateHistogram(
        "platform.job.duration", "s", "From a job's submission to its end (completed, failed, cancelled), by kernel and how it ended",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600] });

    public static IServiceCollection AddGatewayMetrics(this IServiceCollection services) =>
        // The whole read model, grouped: one scan of the jobs table an interval (Metrics:SampleInterval).
        services.AddDatabaseGauge("platform.jobs", "{job}", "Jobs by state and kernel, as clients see them",
            "select status as state, kernel, count(*) as value from jobs group by status, kernel");

    public static void JobsSubmitted(IEnumerable<string> kernels)
    {
        foreach (var kernel in kernels)
            Submitted.Add(1, new KeyValuePair<string, object?>("kernel", kernel));
    }

    /// <summary>Recorded once per job, by the instance whose update ended it (the update is conditional).</summary>
    public static void JobEnded(string kernel, string status, double seconds) =>
        Duration.Record(seconds, new KeyValuePair<string, object?>("kernel", kernel), new KeyValuePair<string, object?>("status", status));
}
