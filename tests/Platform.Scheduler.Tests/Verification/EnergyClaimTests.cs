using Platform.Contracts.Messages;
using Platform.Scheduler.Verification;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Verification;

/// <summary>
/// What the scheduler makes of the figures a node reports with a result, on a real Postgres: absurd figures are
/// bounded and never stop a job, the work is the job's own GFLOP estimate, and joules count only when plausible
/// against the worker's calibrated power and the wall time the scheduler measured.
/// </summary>
public sealed class EnergyClaimTests : SchedulerHarnessTest
{
    // The harness's workers: 30 W, one slot, 100 GFLOP/s; its jobs are 1 GFLOP. With the attempt assigned 10 s before
    // its result, a claim is plausible between 0.25 x 30 W x 0.01 s = 0.075 J and 2 x 30 W x 10 s = 600 J.
    private static readonly TimeSpan Wall = TimeSpan.FromSeconds(10);
    private const double Honest = 0.3; // 30 W for the 0.01 s the job takes at 100 GFLOP/s

    public EnergyClaimTests()
        : base("scheduler-energy")
    {
    }

    /// <summary>Runs one job on the worker, reports <paramref name="metrics"/> as if the attempt took <see cref="Wall"/>, and returns its completion.</summary>
    private async Task<(AssignJob Assign, JobCompleted Done)> RunAsync(AttemptMetrics metrics)
    {
        var job = await SubmitAsync();
        var assign = await AssignedAsync(job.JobId);
        // The wall time is the scheduler's own: the test moves the attempt's assignment back rather than waiting.
        await ExecuteAsync("update attempts set assigned_at = @at where id = @id", new { at = DateTimeOffset.UtcNow - Wall, id = assign.AttemptId.Value });
        await Harness.Bus.Publish(TestWorkerKeys.Signed(Result(assign, Output(1, 2, 3)) with { Metrics = metrics }));
        return (assign, await CompletedAsync(job.JobId));
    }

    private static AttemptMetrics Claim(double? joules, double gflop = 1, double durationMs = 10) =>
        new() { DurationMs = durationMs, Gflop = gflop, Device = "cpu", Joules = joules };

    private void AssertNoConsumerFaulted() => _host.AssertNoConsumerFaulted();

    [Fact]
    public async Task Absurd_figures_from_a_node_are_bounded_and_the_job_completes_on_the_networks_gflop()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 100);
        // Every figure JSON can carry. NaN and infinities cannot travel at all: the bus's JSON reader refuses them (and
        // numbers beyond double range) before any consumer sees the message, so they are bounded in the unit test below.
        var absurd = new[]
        {
            Claim(Honest, gflop: 1e14),
            Claim(1e300, gflop: 1e300, durationMs: 1e300),
            Claim(-5, gflop: -1, durationMs: -1),
            Claim(double.MaxValue, gflop: 1e14, durationMs: -1),
            Claim(double.Epsilon, gflop: double.Epsilon, durationMs: double.MaxValue),
        };
        foreach (var metrics in absurd)
        {
            var (assign, done) = await RunAsync(metrics);
            var accepted = Assert.Single(done.Accepted!);
            // The work credited is the job's estimate (1 GFLOP), whatever the node said.
            Assert.Equal(1, accepted.Metrics.Gflop);
            Assert.Equal(1, done.Metrics.Gflop);
            Assert.InRange(accepted.Metrics.DurationMs, 0, AttemptFigures.MaxDurationMs);
            Assert.True(accepted.Metrics.Joules is null or (>= 0 and <= AttemptFigures.MaxJoules), $"joules {accepted.Metrics.Joules}");
            Assert.Equal(metrics.Joules == Honest ? Honest : null, accepted.CheckedJoules);
            var stored = await QueryAsync<string>("select metrics::text from attempts where id = @id", new { id = assign.AttemptId.Value });
            Assert.DoesNotContain("1e+14", stored, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("NaN", stored, StringComparison.Ordinal);
        }
        AssertNoConsumerFaulted();
        // Only the one plausible claim counts toward the worker's energy, per the network's GFLOP.
        Assert.Equal(1L, await QueryAsync<long>("select attempts from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal(Honest, await QueryAsync<double>("select joules from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal(1.0, await QueryAsync<double>("select gflop from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }));
    }

    [Fact]
    public async Task Missing_zero_and_implausible_joules_are_not_kept_and_an_honest_claim_is()
    {
        await StartAsync();
        var worker = await WorkerAsync(gflops: 100);
        var claims = new (string Case, double? Joules, double? Checked)[]
        {
            ("missing", null, null),
            ("zero", 0, null),
            ("implausibly low: a tenth of a watt over the compute time", 0.001, null),
            ("implausibly high: 100 times the calibrated power over the whole wall time", 30_000, null),
            ("honest: calibrated power over the compute time", Honest, Honest),
            ("honest: calibrated power over the whole wall time", 300, 300),
        };
        foreach (var (name, joules, expected) in claims)
        {
            var (assign, done) = await RunAsync(Claim(joules));
            Assert.True(expected == Assert.Single(done.Accepted!).CheckedJoules, $"{name}: checked {done.Accepted![0].CheckedJoules}, expected {expected}");
            var stored = await QueryAsync<double>("select coalesce(checked_joules, -1) from attempts where id = @id", new { id = assign.AttemptId.Value });
            Assert.Equal(expected ?? -1, stored);
        }
        AssertNoConsumerFaulted();
        Assert.Equal(2L, await QueryAsync<long>("select attempts from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }));
        Assert.Equal(Honest + 300, await QueryAsync<double>("select joules from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }), 9);
        Assert.Equal(2.0, await QueryAsync<double>("select gflop from worker_energy where worker_id = @id", new { id = worker.WorkerId.Value }));
    }

    [Fact]
    public void A_claim_is_checked_against_calibrated_power_speed_slots_and_the_measured_wall_time()
    {
        var worker = new EnergyClaims.Calibration(PowerWatts: 100, Slots: 4, Gflops: 50);
        var wall = TimeSpan.FromSeconds(5);
        // 10 GFLOP at 50 GFLOP/s is 0.2 s of compute: an honest estimate on 4 slots is 100 W x 0.2 s / 4 = 5 J.
        Assert.Equal(5, EnergyClaims.Check(5, 10, worker, wall));
        Assert.Equal(1.3, EnergyClaims.Check(1.3, 10, worker, wall)); // just above a quarter of that, the floor
        Assert.Null(EnergyClaims.Check(1.2, 10, worker, wall));
        Assert.Equal(1000, EnergyClaims.Check(1000, 10, worker, wall)); // twice calibrated power over the whole wall time: the ceiling
        Assert.Null(EnergyClaims.Check(1001, 10, worker, wall));
        // Nothing to check against: no claim, no calibration, no work, no wall time.
        Assert.Null(EnergyClaims.Check(null, 10, worker, wall));
        Assert.Null(EnergyClaims.Check(5, 10, worker with { Gflops = null }, wall));
        Assert.Null(EnergyClaims.Check(5, 10, worker with { PowerWatts = double.NaN }, wall));
        Assert.Null(EnergyClaims.Check(5, 0, worker, wall));
        Assert.Null(EnergyClaims.Check(5, 10, worker, TimeSpan.Zero));
        Assert.Null(EnergyClaims.Check(5, 10, worker, TimeSpan.FromSeconds(-5)));
        // A node cannot lower its floor below physics with a tiny power or a huge slot count or speed.
        var claimsEverything = new EnergyClaims.Calibration(PowerWatts: 1e-9, Slots: 1_000_000, Gflops: 1e12);
        Assert.Null(EnergyClaims.Check(10.0 / EnergyClaims.MaxGflopPerJoule / 2, 10, claimsEverything, wall));
        // Nor raise its ceiling with an absurd power figure.
        Assert.Null(EnergyClaims.Check(1e9, 10, worker with { PowerWatts = 1e12 }, wall));
    }

    [Fact]
    public void Absurd_metrics_are_bounded_to_statistics()
    {
        var bounded = AttemptFigures.Bound(new AttemptMetrics { DurationMs = -1, Gflop = 1e14, Device = new string('x', 10_000), Joules = double.NaN });
        Assert.Equal((0.0, AttemptFigures.MaxGflop, AttemptFigures.MaxDeviceLength, (double?)null),
            (bounded.DurationMs, bounded.Gflop, bounded.Device.Length, bounded.Joules));
        Assert.Null(AttemptFigures.Bound(Claim(-5)).Joules);
        Assert.Null(AttemptFigures.Bound(Claim(1e300)).Joules);
        Assert.Equal(0, AttemptFigures.Bound(Claim(1, gflop: double.NaN, durationMs: double.PositiveInfinity)).Gflop);
        Assert.Equal(AttemptFigures.MaxDurationMs, AttemptFigures.Bound(Claim(1, durationMs: double.PositiveInfinity)).DurationMs);
        Assert.Equal(0, AttemptFigures.JobGflop(null));
        Assert.Equal(2.5, AttemptFigures.JobGflop(2.5));
    }
}
