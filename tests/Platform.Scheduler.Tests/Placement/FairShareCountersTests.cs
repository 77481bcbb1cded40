using Dapper;
using Microsoft.Extensions.Options;
using Platform.Scheduler.Placement;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Placement;

/// <summary>
/// The fair-share counters the dispatcher ranks clients by: loaded from the scheduler's database (every instance's
/// assignments), counted in memory for this instance's own, refreshed, and forgotten after the window.
/// </summary>
public sealed class FairShareCountersTests : IAsyncLifetime
{
    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private TestEnvironment _env = null!;
    private ConsumerTestHost _host = null!;
    private readonly Clock _clock = new(DateTimeOffset.UtcNow);

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-fair-share");
        _host = await SchedulerTestHost.StartAsync(_env, SchedulerTestHost.WorkersNeverBeat);
    }

    public async Task DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync();
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }

    private async Task AssignedInDatabaseAsync(string client, TimeSpan ago)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync("insert into jobs (id, client_account_id, status, last_assigned_at) values (@id, @client, 'running', @at)",
            new { id = Guid.NewGuid().ToString("n"), client, at = _clock.Now - ago });
    }

    private async Task<Dictionary<string, long>> CountsAsync(FairShareCounters counters)
    {
        await using var connection = await _host.Database.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await counters.LoadIfStaleAsync(connection, tx, CancellationToken.None);
        var (clients, counts) = counters.Snapshot();
        return clients.Zip(counts).ToDictionary(p => p.First, p => p.Second);
    }

    [Fact]
    public async Task Counts_come_from_the_database_and_this_instance_and_leave_after_the_window()
    {
        var options = Options.Create(new SchedulerOptions { FairShareWindow = TimeSpan.FromMinutes(10) });
        var counters = new FairShareCounters(options, _clock);
        foreach (var _ in Enumerable.Range(0, 3))
            await AssignedInDatabaseAsync("acc_a", TimeSpan.FromMinutes(1));
        await AssignedInDatabaseAsync("acc_b", TimeSpan.FromMinutes(2));
        await AssignedInDatabaseAsync("acc_b", TimeSpan.FromMinutes(11)); // before the window

        Assert.Equal(new Dictionary<string, long> { ["acc_a"] = 3, ["acc_b"] = 1 }, await CountsAsync(counters));

        // This instance's own assignments count at once.
        counters.Record(["acc_a", "acc_c"], _clock.Now);
        Assert.Equal(new Dictionary<string, long> { ["acc_a"] = 4, ["acc_b"] = 1, ["acc_c"] = 1 }, await CountsAsync(counters));

        // Another instance's assignment is seen at the next refresh, which replaces the counts with the database's.
        await AssignedInDatabaseAsync("acc_b", TimeSpan.Zero);
        Assert.Equal(1, (await CountsAsync(counters))["acc_b"]);
        _clock.Now += FairShareCounters.Refresh + TimeSpan.FromSeconds(1);
        Assert.Equal(new Dictionary<string, long> { ["acc_a"] = 3, ["acc_b"] = 2 }, await CountsAsync(counters));

        // After the window, nothing counts any more, without another load.
        counters.Record(["acc_a"], _clock.Now);
        _clock.Now += TimeSpan.FromMinutes(11);
        var (clients, _) = counters.Snapshot();
        Assert.Empty(clients);
    }
}
