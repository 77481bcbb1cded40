using Platform.Contracts.Api;

namespace Platform.Gateway.Tests.Jobs;

public sealed class JobStatusesTests
{
    private static readonly string[] Lifecycle = ["pending", "queued", "assigned", "running", "verifying"];
    private static readonly string[] Terminal = ["completed", "failed", "cancelled", "rejected"];

    [Fact]
    public void Lifecycle_statuses_rank_strictly_in_design_order_and_below_every_terminal_status()
    {
        // Strictly: the design orders these steps; equal ranks would say two of them are one.
        foreach (var (earlier, later) in Lifecycle.Zip(Lifecycle.Skip(1)))
            Assert.True(JobStatuses.Rank(earlier) < JobStatuses.Rank(later), $"{earlier} ({JobStatuses.Rank(earlier)}) does not rank below {later} ({JobStatuses.Rank(later)})");
        foreach (var status in Lifecycle)
        {
            foreach (var end in Terminal)
                Assert.True(JobStatuses.Rank(status) < JobStatuses.Rank(end), $"{status} does not rank below {end}");
        }
    }

    [Fact]
    public void Terminal_statuses_rank_ten_which_the_job_view_holds_a_job_at()
    {
        // The lifecycle does not order the ends; JobViewConsumer's update stops at status_rank 10, so the first end heard stays.
        Assert.All(Terminal, end => Assert.Equal(10, JobStatuses.Rank(end)));
        Assert.All(Lifecycle, status => Assert.True(JobStatuses.Rank(status) < 10, $"{status} ranks {JobStatuses.Rank(status)}"));
    }

    [Fact]
    public void Every_known_status_is_either_in_the_lifecycle_or_terminal()
    {
        Assert.Equal(Lifecycle.Concat(Terminal).Order(), JobStatuses.All.Order());
    }

    [Theory]
    [InlineData("completed")]
    [InlineData("failed")]
    [InlineData("cancelled")]
    [InlineData("rejected")]
    public void Terminal_statuses_are_terminal(string status) => Assert.True(JobStatuses.IsTerminal(status));

    [Theory]
    [InlineData("pending")]
    [InlineData("queued")]
    [InlineData("assigned")]
    [InlineData("running")]
    [InlineData("verifying")]
    public void Statuses_before_the_end_are_not_terminal(string status) => Assert.False(JobStatuses.IsTerminal(status));

    [Theory]
    [InlineData("paused")]
    [InlineData("")]
    [InlineData("Completed")]
    public void Unknown_status_is_refused(string status)
    {
        Assert.Throws<ArgumentException>(() => JobStatuses.Rank(status));
        // Not terminal: a client keeps watching a job in a status a newer gateway added.
        Assert.False(JobStatuses.IsTerminal(status));
    }
}
