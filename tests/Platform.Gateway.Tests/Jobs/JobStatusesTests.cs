using Platform.Gateway.Jobs;

namespace Platform.Gateway.Tests.Jobs;

public sealed class JobStatusesTests
{
    [Fact]
    public void Lifecycle_statuses_rank_in_design_order()
    {
        string[] lifecycle = ["pending", "queued", "assigned", "running", "verifying", "completed"];

        Assert.Equal(lifecycle.Select(JobStatuses.Rank).Order(), lifecycle.Select(JobStatuses.Rank));
    }

    [Theory]
    [InlineData("completed")]
    [InlineData("failed")]
    [InlineData("cancelled")]
    [InlineData("rejected")]
    public void Terminal_statuses_are_terminal(string status) => Assert.True(JobStatuses.IsTerminal(status));

    [Fact]
    public void Unknown_status_is_refused() => Assert.Throws<ArgumentException>(() => JobStatuses.Rank("paused"));
}
