using System.ComponentModel.DataAnnotations;

namespace Platform.Scheduler.Placement;

public sealed class SchedulerOptions : IValidatableObject
{
    public const string SectionName = "Scheduler";

    /// <summary>How often workers say they are alive; three missed beats and a worker gets no new work.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long an attempt is held without news from its worker; every heartbeat that lists the attempt renews
    /// it (and every beat renews the tiny jobs waiting in the node's queue: see TinyJobsPerSlot). An expired lease
    /// gives the job to another worker.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long running work survives silence: an attempt is only taken from a worker (worker_lost) once the
    /// worker has been silent this long and its lease has run out, and after the scheduler starts or its
    /// broker connection comes back it waits this long before taking any. A blip shorter than this never
    /// moves work. At least three heartbeat intervals.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.300", "1.00:00:00")]
    public TimeSpan GracePeriod { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Nothing waits forever: a job not finished this long after the scheduler took it (no worker fits it, or none
    /// finishes it, or a message it waits for never came) fails with deadline_exceeded and is refunded.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "365.00:00:00")]
    public TimeSpan JobDeadline { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often the scheduler looks for jobs past <see cref="JobDeadline"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan JobDeadlineCheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Attempts a job gets (lost workers, expired leases, worker errors) before it fails with their history.</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>latency, energy or cost: used for jobs that do not choose.</summary>
    [RegularExpression("^(latency|energy|cost)$")]
    public string DefaultPolicy { get; set; } = "latency";

    /// <summary>How far back a client's started jobs count against its share of the queue.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan FairShareWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How fast a worker is assumed to download inputs, for the transfer part of the estimate.</summary>
    [Range(0.001, 1_000_000)]
    public double TransferMegabytesPerSecond { get; set; } = 100;

    [Range(0, 10_000)]
    public double SameRegionLatencyMs { get; set; } = 5;

    [Range(0, 10_000)]
    public double CrossRegionLatencyMs { get; set; } = 80;

    /// <summary>Measured round trips between regions, keyed "a:b" (either order).</summary>
    public Dictionary<string, double> RegionLatencyMs { get; set; } = [];

    /// <summary>Relative electricity price by region (1.0 when absent), for the cost policy.</summary>
    public Dictionary<string, double> EnergyPricePerKwh { get; set; } = [];

    /// <summary>Safety net for missed wake-ups: queued jobs are looked at least this often.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often the dispatcher reloads its ready queue from the database: what this scheduler queues is in it at once,
    /// what another scheduler instance queued is seen by then.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan ReadyQueueReload { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Credits an operator must have staked before its workers get work.</summary>
    [Range(0, 1_000_000_000)]
    public decimal MinimumStake { get; set; } = 10m;

    /// <summary>Workers below this reputation (1.0 at start) get no work.</summary>
    [Range(0, 1)]
    public double MinimumReputation { get; set; } = 0.3;

    /// <summary>A worker whose result loses a verification keeps this fraction of its reputation.</summary>
    [Range(0, 1)]
    public double PenaltyReputationFactor { get; set; } = 0.5;

    /// <summary>What a verified (agreeing) result adds to a worker's reputation, up to 1.0.</summary>
    [Range(0, 1)]
    public double VerifiedReputationGain { get; set; } = 0.05;

    /// <summary>Whether single-replica results are spot-checked at all (adaptive trust); off, only replicas verify.</summary>
    public bool SpotChecks { get; set; } = true;

    /// <summary>
    /// Results a worker must have accepted in a row, per kernel, before its single-replica results stop being
    /// checked every time; above it each is checked with probability 1/streak.
    /// </summary>
    [Range(0, 1_000_000)]
    public int TrustThreshold { get; set; } = 5;

    /// <summary>However long a worker's streak, at least this share of its single-replica results is still checked.</summary>
    [Range(0, 1)]
    public double MinimumCheckProbability { get; set; } = 0.01;

    /// <summary>
    /// Accepted attempts of a kernel a worker needs before the energy and cost policies rank it by the joules per
    /// GFLOP those attempts reported rather than by its calibrated power over its rate.
    /// </summary>
    [Range(1, 1_000_000)]
    public int EnergySamples { get; set; } = 3;

    /// <summary>How many of its latest placements each worker's explanation keeps (GET /v1/workers/{id}/placement).</summary>
    [Range(1, 1000)]
    public int PlacementHistory { get; set; } = 20;

    /// <summary>
    /// The least time an attempt is given before it is overdue (attempt_overdue), however small its job: a
    /// deadline is the larger of this and <see cref="AttemptTimeSlack"/> times the attempt's expected time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "7.00:00:00")]
    public TimeSpan MinimumAttemptTime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How many times its expected time an attempt may take before it is overdue. Expected: the job's GFLOP at the
    /// worker's effective rate, as if all its slots shared the device, plus the input transfer.
    /// </summary>
    [Range(1, 1_000_000)]
    public double AttemptTimeSlack { get; set; } = 10;

    /// <summary>A worker whose attempt ran past its deadline keeps this fraction of its reputation.</summary>
    [Range(0, 1)]
    public double OverdueReputationFactor { get; set; } = 0.8;

    /// <summary>
    /// A worker's claimed GFLOP/s for a kernel is believed up to this many times the median the scheduler
    /// measured of its accepted attempts (once it has <see cref="ClaimSamples"/> of them).
    /// </summary>
    [Range(1, 1_000_000)]
    public double ClaimTolerance { get; set; } = 2;

    /// <summary>Measured attempts of a kernel a worker needs before its measured rate bounds its claim; the latest this many count.</summary>
    [Range(1, 1000)]
    public int ClaimSamples { get; set; } = 5;

    /// <summary>
    /// An accepted attempt is a speed sample only when it ran at least this long (scheduler clock, less its input
    /// transfer): shorter ones are mostly messaging and would make every worker look slow.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan SpeedSampleMinimumTime { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The most slots a worker is believed to have, whatever it claims: more would let one node hoard the queue.</summary>
    [Range(1, 10_000)]
    public int MaxSlots { get; set; } = 32;

    /// <summary>
    /// How many tiny jobs one slot holds at once (16; 1 turns sharing off, and a tiny job takes a whole slot like any
    /// other). A node is handed that many per slot; they wait in its queue and run through its slots in turn, so the
    /// network pipelines tiny work instead of paying a full round trip through every stage per slot and job. The node
    /// cannot see the ones still in its queue, so its heartbeats renew every tiny job it was given along with the
    /// attempts it lists; each is still bounded by its attempt deadline (Scheduler:MinimumAttemptTime at least).
    /// </summary>
    [Range(1, 1_000)]
    public int TinyJobsPerSlot { get; set; } = 16;

    /// <summary>
    /// A job is tiny when the network's own estimate of its work (from the inputs' shapes, never the client's word)
    /// is at most this many GFLOP and its inputs at most <see cref="TinyJobInputBytes"/>: milliseconds on any node.
    /// </summary>
    [Range(0, 1_000)]
    public double TinyJobGflop { get; set; } = 0.001;

    [Range(0, long.MaxValue)]
    public long TinyJobInputBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// A worker that failed a job on its inputs (input_invalid, input_missing, input_corrupt) which another
    /// operator's worker then completed keeps this fraction of its reputation.
    /// </summary>
    [Range(0, 1)]
    public double FalseClaimReputationFactor { get; set; } = 0.5;

    /// <summary>The storage service, for comparing replica outputs whose CIDs differ element by element and checking input claims.</summary>
    [Required]
    public Uri StorageUrl { get; set; } = new("http://127.0.0.1:8081");

    /// <summary>
    /// How often the network and each online worker are sampled for the dashboard's charts over time
    /// (GET /v1/network/history, GET /v1/workers/{id}/history).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan HistoryInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long samples are kept; the history endpoints answer at most this far back.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "90.00:00:00")]
    public TimeSpan HistoryRetention { get; set; } = TimeSpan.FromDays(2);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (GracePeriod < 3 * HeartbeatInterval)
            yield return new ValidationResult($"GracePeriod ({GracePeriod}) must be at least three heartbeat intervals ({3 * HeartbeatInterval})", [nameof(GracePeriod)]);
        // A worker's J/GFLOP is the difference between two samples: at least two must be kept.
        if (HistoryRetention < 2 * HistoryInterval)
            yield return new ValidationResult($"HistoryRetention ({HistoryRetention}) must hold at least two samples ({2 * HistoryInterval})", [nameof(HistoryRetention)]);
    }
}
