namespace Platform.Scheduler.Placement;

/// <summary>The network facts placement estimates with: transfer speed, latency between regions, energy prices.</summary>
public sealed class PlacementModel(SchedulerOptions options)
{
    public double TransferBytesPerSecond { get; } = options.TransferMegabytesPerSecond * 1e6;

    /// <summary>Round trip between the job's region (when it names one) and the worker's.</summary>
    public double LatencySeconds(string? jobRegion, string workerRegion)
    {
        if (jobRegion is null || jobRegion == workerRegion)
            return options.SameRegionLatencyMs / 1000.0;
        return (options.RegionLatencyMs.TryGetValue($"{jobRegion}:{workerRegion}", out var ms)
            || options.RegionLatencyMs.TryGetValue($"{workerRegion}:{jobRegion}", out ms)
            ? ms
            : options.CrossRegionLatencyMs) / 1000.0;
    }

    /// <summary>Price of a kWh where the worker runs, relative to 1.0.</summary>
    public double EnergyPrice(string region) => options.EnergyPricePerKwh.TryGetValue(region, out var price) ? price : 1.0;
}
