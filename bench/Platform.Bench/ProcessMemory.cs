using System.Globalization;

namespace Platform.Bench;

/// <summary>A process's memory as Linux reports it (/proc/&lt;pid&gt;/status): for the storage and node benchmarks.</summary>
public static class ProcessMemory
{
    /// <summary>A field of /proc/&lt;pid&gt;/status in kB, such as VmRSS (resident now) or VmHWM (the peak so far).</summary>
    public static long StatusKb(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"/proc/{pid}/status has no {field}");
    }

    /// <summary>The largest VmRSS seen, sampled every 50 ms on a background task until stopped.</summary>
    public sealed class RssSampler
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task<long> sampling;

        public RssSampler(int pid) => sampling = Task.Run(() => SampleAsync(pid, stop.Token));

        public async Task<long> StopAsync()
        {
            await stop.CancelAsync();
            var peak = await sampling;
            stop.Dispose();
            return peak;
        }

        private static async Task<long> SampleAsync(int pid, CancellationToken ct)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            var peak = StatusKb(pid, "VmRSS");
            try
            {
                while (await timer.WaitForNextTickAsync(ct))
                    peak = Math.Max(peak, StatusKb(pid, "VmRSS"));
            }
            catch (OperationCanceledException)
            {
                // Stopped: the peak so far is the answer.
            }
            return Math.Max(peak, StatusKb(pid, "VmRSS"));
        }
    }
}
