using System.Globalization;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests.Chaos;

/// <summary>
/// The chaos run at CI size (./platform chaos runs it bigger: PLATFORM_CHAOS_JOBS, PLATFORM_CHAOS_SEED): no job
/// lost, nothing paid or minted twice, credits conserved, every output verified, whatever was restarted.
/// </summary>
public sealed class ChaosTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : fallback;

    [Fact]
    public async Task Under_worker_kills_and_broker_database_and_service_restarts_no_job_is_lost_and_no_credit_moves_twice()
    {
        var jobs = Setting("PLATFORM_CHAOS_JOBS", 40);
        var seed = Setting("PLATFORM_CHAOS_SEED", 8);
        var outage = TimeSpan.FromSeconds(Setting("PLATFORM_CHAOS_OUTAGE", 60));
        output.WriteLine($"seed {seed}");

        var report = await new ChaosRun(network, jobs, seed, output.WriteLine, outage).RunAsync(CancellationToken.None);

        AssertEveryJobEndedOnceAndPaidOnce(report, jobs, output);
        // The broker and the database each stopped for the outage under load: the gateway answered every request
        // with a success or a 503 with Retry-After (never a 500 or nothing), took jobs while the broker was down and
        // showed them, refused writes while the database was down, and served the dashboard all along.
        Assert.Equal(["Postgres", "RabbitMQ"], report.Outages.Select(o => o.Server).Order());
        Assert.All(report.Outages, o => Assert.True(o.Unexpected.Count == 0, o.Describe()));
        Assert.All(report.Outages, o => Assert.True(o.DashboardServed > 0, o.Describe()));
        var broker = report.Outages.Single(o => o.Server == "RabbitMQ");
        Assert.True(broker.Accepted > 0 && broker.ReadsServed > 0 && broker.WritesRefused == 0, broker.Describe());
        var database = report.Outages.Single(o => o.Server == "Postgres");
        Assert.True(database.WritesRefused > 0, database.Describe());
    }

    /// <summary>What every chaos run must show, whatever its faults.</summary>
    internal static void AssertEveryJobEndedOnceAndPaidOnce(ChaosReport report, int jobs, ITestOutputHelper output)
    {
        output.WriteLine("chaos run report:\n" + report.Table());
        Assert.Equal(jobs, report.Submitted);
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, report.StatusMismatches);
        Assert.Equal(0, report.DuplicatePayments);
        Assert.Equal(0, report.DuplicateMints);
        Assert.Equal(0, report.PaidWithoutAcceptance);
        Assert.True(report.MoneyProblems.Count == 0, "jobs whose money is not exact:\n" + string.Join("\n", report.MoneyProblems));
        Assert.Equal(0m, report.EscrowHeld);
        Assert.True(report.BalancesOffPostings.Count == 0, "balances off their postings:\n" + string.Join("\n", report.BalancesOffPostings));
        Assert.Equal(0, report.UnbalancedTransactions);
        Assert.Equal(report.Completed, report.OutputsVerified);
        // Faults may exhaust a job's attempts; most jobs still complete.
        Assert.True(report.Completed >= jobs * 9 / 10, $"only {report.Completed} of {jobs} jobs completed");
    }
}

/// <summary>
/// A job array of 10,000 in one request (PLATFORM_CHAOS_ARRAY_JOBS to change it), with a worker killed and the scheduler
/// restarted while it runs: every job ends once, and its money moves once.
/// </summary>
public sealed class ChaosArrayTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    [Fact]
    public async Task An_array_of_ten_thousand_jobs_with_a_worker_killed_and_the_scheduler_restarted_midway_completes_each_exactly_once()
    {
        var jobs = int.TryParse(Environment.GetEnvironmentVariable("PLATFORM_CHAOS_ARRAY_JOBS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 10_000;
        const int seed = 18;
        output.WriteLine($"seed {seed}");

        var report = await new ChaosRun(network, jobs, seed, output.WriteLine).RunArrayAsync(CancellationToken.None);

        ChaosTests.AssertEveryJobEndedOnceAndPaidOnce(report, jobs, output);
        Assert.Equal(["killed a worker", "restarted scheduler"], report.Faults);
    }
}
