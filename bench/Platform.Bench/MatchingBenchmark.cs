using System.Diagnostics;
using Platform.Scheduler.Placement;

namespace Platform.Bench;

/// <summary>
/// Placement decisions per second, in process: 10,000 workers, 100,000 queued jobs, a mix of regions,
/// devices, policies and memory needs. Work completes as it is placed (the oldest running attempt frees its
/// slot), so the engine stays at the partly-loaded steady state a real network runs in.
/// </summary>
public static class MatchingBenchmark
{
    private const int Workers = 10_000;
    private const int Jobs = 100_000;
    private const double TargetDecisionsPerSecond = 50_000;

    public static void Run()
    {
        const int seed = 42;
        var rng = new Random(seed);
        string[] regions = ["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south"];
        string[] kernels = ["vector-add", "matmul", "kmeans", "knn", "train-logreg", "mlp-infer"];
        var engine = new PlacementEngine(new PlacementModel(new SchedulerOptions()));
        var slots = 0;
        for (var i = 0; i < Workers; i++)
        {
            var gpu = rng.Next(5) == 0;
            var count = rng.Next(1, 9);
            slots += count;
            engine.Add(new WorkerState($"w{i}", regions[rng.Next(regions.Length)], count, 0, rng.Next(4, 129) * 1024, gpu ? ["gpu"] : ["cpu"],
                kernels.Where(_ => rng.Next(4) != 0).ToDictionary(k => k, _ => gpu ? rng.Next(500, 20_000) : rng.Next(10, 400) * 1.0),
                gpu ? rng.Next(150, 450) : rng.Next(30, 200)));
        }
        var jobs = Enumerable.Range(0, Jobs).Select(_ => new JobDemand(kernels[rng.Next(kernels.Length)], rng.NextDouble() * 100, rng.Next(1, 100_000_000),
            rng.Next(10) == 0 ? "gpu" : "any", rng.Next(4) == 0 ? rng.Next(1, 64) * 1024 : 0, rng.Next(3) == 0 ? regions[rng.Next(regions.Length)] : null,
            (PlacementPolicy)rng.Next(3))).ToList();

        // Keep about 60% of the slots busy: past that, each new placement first frees the oldest.
        var running = new Queue<(string Worker, JobDemand Job)>();
        var busyTarget = slots * 6 / 10;
        var placed = 0;
        var stopwatch = Stopwatch.StartNew();
        foreach (var job in jobs)
        {
            if (running.Count >= busyTarget)
            {
                var (worker, done) = running.Dequeue();
                engine.Release(worker, done);
            }
            if (engine.Place(job) is { } choice)
            {
                running.Enqueue((choice.WorkerId, job));
                placed++;
            }
        }
        stopwatch.Stop();
        var rate = Jobs / stopwatch.Elapsed.TotalSeconds;
        Console.WriteLine();
        Console.WriteLine($"matching (seed {seed}): {Workers:N0} workers ({slots:N0} slots), {Jobs:N0} queued jobs, {placed:N0} placed");
        Console.WriteLine($"  decisions/s           {rate,12:N0}");
        Console.WriteLine($"  target                {TargetDecisionsPerSecond,12:N0}   ratio {rate / TargetDecisionsPerSecond:F2}x");
    }
}
