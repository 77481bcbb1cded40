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
        output.WriteLine($"seed {seed}");

        var report = await new ChaosRun(network, jobs, seed, output.WriteLine).RunAsync(CancellationToken.None);

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
