namespace Platform.Scheduler.Placement;

public enum PlacementPolicy
{
    Latency,
    Energy,
    Cost,
}

/// <summary>
/// A worker as placement sees it: where it is, what it runs, how fast, and how busy. Busy in units: each slot is
/// <paramref name="UnitsPerSlot"/> units, a job takes a whole slot, and a tiny job (<see cref="JobDemand.Tiny"/>) one
/// unit, so one slot holds that many tiny jobs at once (they wait in the node's queue and run through its slots in
/// turn). With one unit per slot, <paramref name="Active"/> counts attempts.
/// </summary>
public sealed record WorkerState(
    string Id,
    string Region,
    int Slots,
    int Active,
    long MemoryMb,
    IReadOnlyCollection<string> DeviceKinds,
    IReadOnlyDictionary<string, double> Gflops,
    double PowerWatts,
    IReadOnlyDictionary<string, double>? JoulesPerGflop = null,
    int UnitsPerSlot = 1)
{
    public int Capacity => Slots * UnitsPerSlot;

    /// <summary>The units the job takes on this worker.</summary>
    public int UnitsOf(JobDemand job) => job.Tiny ? 1 : UnitsPerSlot;

    /// <summary>
    /// Energy per GFLOP of a kernel: what the worker's accepted attempts of it reported, once there are enough of
    /// them, else its calibrated power over its rate.
    /// </summary>
    public double EnergyPerGflop(string kernel, double rate) =>
        JoulesPerGflop is not null && JoulesPerGflop.TryGetValue(kernel, out var reported) && reported > 0 ? reported : PowerWatts / rate;
}

/// <summary>What a job needs and how big it is; a tiny one takes one unit of a slot (<see cref="WorkerState"/>).</summary>
public sealed record JobDemand(string Kernel, double Gflop, long InputBytes, string Device, long MinMemoryMb, string? Region, PlacementPolicy Policy,
    bool Tiny = false);

/// <summary>The chosen worker with the estimates the choice was made on.</summary>
public sealed record PlacementChoice(string WorkerId, double ExpectedSeconds, double ExpectedJoules, double ExpectedCost = 0);

/// <summary>Why a worker was passed over; for a worse score, its score and the chosen worker's under the job's policy.</summary>
public sealed record PassedOver(PlacementReason Reason, double Score = 0, double ChosenScore = 0);

/// <summary>
/// Chooses a worker for each job in O(regions x log workers): workers with a free slot are indexed by
/// (kernel, region, device kind) in one sorted set per policy, keyed by the part of the score that depends
/// only on the worker, so the best worker of a bucket is its set's minimum and a decision compares one
/// candidate per bucket. Not thread-safe: one engine serves one dispatch pass.
/// </summary>
public sealed class PlacementEngine(PlacementModel model)
{
    private sealed class Entry(WorkerState worker)
    {
        public WorkerState Worker { get; } = worker;
        public int Active { get; set; } = worker.Active;
        public List<(Bucket Bucket, double Rate, double JoulesPerGflop)> Buckets { get; } = [];
    }

    private sealed class Bucket(string region, string device)
    {
        public string Region { get; } = region;
        public string Device { get; } = device;
        public SortedSet<(double Key, string Id)>[] ByPolicy { get; } = [new(), new(), new()];
    }

    private readonly Dictionary<(string Kernel, string Region, string Device), Bucket> _buckets = [];
    private readonly Dictionary<string, List<Bucket>> _bucketsByKernel = [];
    private readonly Dictionary<string, Entry> _workers = [];

    private int _workersWithFreeSlots;

    public int WorkerCount => _workers.Count;

    /// <summary>Whether any worker still has a free slot (or a unit of one, for tiny jobs): once none has, the rest of a pass can stop.</summary>
    public bool HasCapacity => _workersWithFreeSlots > 0;

    /// <summary>Whether any worker still has a whole slot free: room for a job that is not tiny.</summary>
    public bool HasWholeSlot => _workers.Values.Any(e => e.Active + e.Worker.UnitsPerSlot <= e.Worker.Capacity);

    public void Add(WorkerState worker)
    {
        var entry = new Entry(worker);
        _workers[worker.Id] = entry;
        foreach (var (kernel, rate) in worker.Gflops)
        {
            if (rate <= 0)
                continue;
            foreach (var device in worker.DeviceKinds)
            {
                if (!_buckets.TryGetValue((kernel, worker.Region, device), out var bucket))
                {
                    bucket = new Bucket(worker.Region, device);
                    _buckets[(kernel, worker.Region, device)] = bucket;
                    if (!_bucketsByKernel.TryGetValue(kernel, out var list))
                        _bucketsByKernel[kernel] = list = [];
                    list.Add(bucket);
                }
                entry.Buckets.Add((bucket, rate, worker.EnergyPerGflop(kernel, rate)));
            }
        }
        Index(entry);
    }

    /// <summary>Takes a worker out of consideration (it went away, or another scheduler filled it).</summary>
    public void Remove(string workerId)
    {
        if (_workers.Remove(workerId, out var entry))
            Unindex(entry);
    }

    /// <summary>
    /// Picks the best worker for the job and takes one of its slots; null when none fits. Workers in
    /// <paramref name="avoid"/> (those that already failed this job) are used only when no other fits; workers
    /// in <paramref name="exclude"/> (another replica's operator) never.
    /// </summary>
    public PlacementChoice? Place(JobDemand job, IReadOnlyCollection<string>? avoid = null, IReadOnlyCollection<string>? exclude = null)
    {
        exclude ??= [];
        return avoid is { Count: > 0 } ? PlaceAvoiding(job, avoid, exclude) ?? PlaceAvoiding(job, [], exclude) : PlaceAvoiding(job, [], exclude);
    }

    private PlacementChoice? PlaceAvoiding(JobDemand job, IReadOnlyCollection<string> avoid, IReadOnlyCollection<string> exclude)
    {
        if (!_bucketsByKernel.TryGetValue(job.Kernel, out var buckets))
            return null;
        var policy = (int)job.Policy;
        Entry? best = null;
        var bestScore = double.MaxValue;
        foreach (var bucket in buckets)
        {
            if (job.Region is not null && bucket.Region != job.Region)
                continue;
            if (job.Device != "any" && bucket.Device != job.Device)
                continue;
            var set = bucket.ByPolicy[policy];
            if (set.Count == 0)
                continue;
            var candidate = FirstFitting(set, job, avoid, exclude);
            if (candidate is null)
                continue;
            var score = Score(candidate, job).For(job.Policy);
            if (score < bestScore || score == bestScore && string.CompareOrdinal(candidate.Worker.Id, best!.Worker.Id) < 0)
            {
                best = candidate;
                bestScore = score;
            }
        }
        if (best is null)
            return null;

        var estimate = Score(best, job);
        Unindex(best);
        best.Active += best.Worker.UnitsOf(job);
        Index(best);
        return new PlacementChoice(best.Worker.Id, estimate.Seconds, estimate.Joules, estimate.Cost);
    }

    /// <summary>Gives back what the job took, when its assignment could not be committed.</summary>
    public void Release(string workerId, JobDemand job)
    {
        if (!_workers.TryGetValue(workerId, out var entry) || entry.Active == 0)
            return;
        Unindex(entry);
        entry.Active = Math.Max(0, entry.Active - entry.Worker.UnitsOf(job));
        Index(entry);
    }

    private static bool Fits(Entry entry, JobDemand job) => entry.Active + entry.Worker.UnitsOf(job) <= entry.Worker.Capacity;

    /// <summary>
    /// Why a worker did not get a job that was just placed (or could not be placed): the first hard
    /// requirement it misses, else how it compared with the chosen worker. Null for the chosen worker itself
    /// and for workers this engine does not know (ineligible ones are explained by their caller).
    /// </summary>
    public PassedOver? Explain(string workerId, JobDemand job, PlacementChoice? chosen, IReadOnlyCollection<string>? avoid = null,
        IReadOnlyCollection<string>? exclude = null)
    {
        if (!_workers.TryGetValue(workerId, out var entry) || chosen?.WorkerId == workerId)
            return null;
        var worker = entry.Worker;
        if (!worker.Gflops.TryGetValue(job.Kernel, out var rate) || rate <= 0)
            return new PassedOver(PlacementReason.KernelUnsupported);
        if (job.Device != "any" && !worker.DeviceKinds.Contains(job.Device))
            return new PassedOver(PlacementReason.DeviceMismatch);
        if (job.Region is not null && worker.Region != job.Region)
            return new PassedOver(PlacementReason.RegionMismatch);
        if (worker.MemoryMb < job.MinMemoryMb)
            return new PassedOver(PlacementReason.MemoryTooSmall);
        if (exclude?.Contains(workerId) == true)
            return new PassedOver(PlacementReason.SameOperatorAsResult);
        // Before its slots: a worker that failed the job is passed over for it free or busy, and a pass that loaded it
        // while the failed attempt still held its slot must say the same as one that loaded it after.
        if (avoid?.Contains(workerId) == true && chosen is not null)
            return new PassedOver(PlacementReason.FailedThisJob);
        if (!Fits(entry, job))
            return new PassedOver(PlacementReason.NoFreeSlot);
        if (chosen is null)
            return null;
        var mine = Score(entry, job).For(job.Policy);
        var theirs = job.Policy switch
        {
            PlacementPolicy.Energy => chosen.ExpectedJoules,
            PlacementPolicy.Cost => chosen.ExpectedCost,
            _ => chosen.ExpectedSeconds,
        };
        return new PassedOver(PlacementReason.SlowerThanChosen, mine, theirs);
    }

    private Entry? FirstFitting(SortedSet<(double Key, string Id)> set, JobDemand job, IReadOnlyCollection<string> avoid, IReadOnlyCollection<string> exclude)
    {
        // Memory is rarely the constraint, so the best-keyed worker almost always fits; walk on when it does not.
        foreach (var (_, id) in set)
        {
            var entry = _workers[id];
            if (entry.Worker.MemoryMb >= job.MinMemoryMb && !avoid.Contains(id) && !exclude.Contains(id) && Fits(entry, job))
                return entry;
        }
        return null;
    }

    private readonly record struct Estimate(double Seconds, double Joules, double Cost)
    {
        public double For(PlacementPolicy policy) => policy switch
        {
            PlacementPolicy.Energy => Joules,
            PlacementPolicy.Cost => Cost,
            _ => Seconds,
        };
    }

    private Estimate Score(Entry entry, JobDemand job)
    {
        var rate = entry.Worker.Gflops[job.Kernel];
        // A device shared by several attempts gives each a share of its rate.
        var compute = job.Gflop / rate * (SlotsBusy(entry) + 1);
        var seconds = compute + job.InputBytes / model.TransferBytesPerSecond + model.LatencySeconds(job.Region, entry.Worker.Region);
        var joules = job.Gflop * entry.Worker.EnergyPerGflop(job.Kernel, rate);
        return new Estimate(seconds, joules, joules / 3.6e6 * model.EnergyPrice(entry.Worker.Region));
    }

    // The worker-only part of each policy's score; the job-dependent parts are equal within a bucket.
    private static double KeyFor(int policy, Entry entry, double rate, double joulesPerGflop, PlacementModel model) => policy switch
    {
        (int)PlacementPolicy.Energy => joulesPerGflop,
        (int)PlacementPolicy.Cost => joulesPerGflop * model.EnergyPrice(entry.Worker.Region),
        _ => (SlotsBusy(entry) + 1) / rate,
    };

    private static double SlotsBusy(Entry entry) => entry.Active / (double)entry.Worker.UnitsPerSlot;

    private void Index(Entry entry)
    {
        if (entry.Active >= entry.Worker.Capacity)
            return;
        _workersWithFreeSlots++;
        foreach (var (bucket, rate, joulesPerGflop) in entry.Buckets)
        {
            for (var p = 0; p < bucket.ByPolicy.Length; p++)
                bucket.ByPolicy[p].Add((KeyFor(p, entry, rate, joulesPerGflop, model), entry.Worker.Id));
        }
    }

    private void Unindex(Entry entry)
    {
        if (entry.Active >= entry.Worker.Capacity)
            return;
        _workersWithFreeSlots--;
        foreach (var (bucket, rate, joulesPerGflop) in entry.Buckets)
        {
            for (var p = 0; p < bucket.ByPolicy.Length; p++)
                bucket.ByPolicy[p].Remove((KeyFor(p, entry, rate, joulesPerGflop, model), entry.Worker.Id));
        }
    }
}
