using System.Globalization;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests.Chaos;

/// <summary>
/// A partition, as Jepsen tests RabbitMQ: each broker node in a network namespace of its own, node 1 cut off from the
/// other two and from half the services (the gateway and rewards still reach it over a direct link) for 60 s under
/// load (PLATFORM_PARTITION_SECONDS), then healed: nothing acknowledged is lost or applied twice.
/// </summary>
public sealed class PartitionTests(PartitionNetwork network, ITestOutputHelper output) : IClassFixture<PartitionNetwork>
{
    [Fact]
    public async Task A_broker_node_cut_off_from_the_others_and_half_the_services_loses_no_job_and_pays_none_twice()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("PLATFORM_PARTITION_SECONDS"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 60;
        const int jobs = 40;
        const int seed = 20;
        output.WriteLine($"seed {seed}");

        var report = await new ChaosRun(network, jobs, seed, output.WriteLine, TimeSpan.FromSeconds(seconds), ChaosFaults.Partition).RunAsync(CancellationToken.None);

        ChaosTests.AssertEveryJobEndedOnceAndPaidOnce(report, jobs, output);
        var partition = Assert.Single(report.Outages);
        // The gateway answered every request (a 2xx, or a 503 with Retry-After) and took jobs while node 1 was cut off.
        // (How many jobs completed meanwhile depends on how soon each client of node 1 notices it gone: reported, not asserted.)
        Assert.True(partition.Unexpected.Count == 0 && partition.Accepted > 0, partition.Describe());
    }
}
