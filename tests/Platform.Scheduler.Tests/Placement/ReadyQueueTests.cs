using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Tests.Placement;

/// <summary>The ready queue's fair-share order, in memory: what a dispatch pass chooses from.</summary>
public sealed class ReadyQueueTests
{
    private static readonly DateTime Start = new(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);

    private static ReadyQueue.Entry Job(string id, string client, int second, int priority = 0) => new(id, client, priority, Start.AddSeconds(second));

    private static readonly Dictionary<string, long> NoUsage = [];

    [Fact]
    public void A_burst_from_one_client_does_not_stand_in_front_of_another_clients_single_job()
    {
        var queue = new ReadyQueue();
        queue.Add(Enumerable.Range(0, 10).Select(i => Job($"a{i}", "burst", i)));
        queue.Add([Job("b0", "single", 20)]);

        Assert.Equal(["a0", "b0", "a1", "a2"], queue.Candidates(4, NoUsage).Select(e => e.Id));
    }

    [Fact]
    public void Recent_starts_push_a_client_back_and_priority_leads_within_a_client()
    {
        var queue = new ReadyQueue();
        queue.Add([Job("a-old", "busy", 0), Job("a-urgent", "busy", 5, priority: 9), Job("b0", "quiet", 10), Job("b1", "quiet", 11)]);

        // "busy" started two jobs within the window: its first waiting job ranks third.
        var usage = new Dictionary<string, long> { ["busy"] = 2 };

        Assert.Equal(["b0", "b1", "a-urgent", "a-old"], queue.Candidates(10, usage).Select(e => e.Id));
    }

    [Fact]
    public void Chosen_jobs_can_be_skipped_removed_and_queued_again_at_a_new_place()
    {
        var queue = new ReadyQueue();
        queue.Add([Job("a0", "c", 0), Job("a1", "c", 1), Job("a2", "c", 2)]);

        Assert.Equal(["a1", "a2"], queue.Candidates(10, NoUsage, skip: new HashSet<string> { "a0" }).Select(e => e.Id));
        queue.Remove(["a1"]);
        queue.Add([Job("a0", "c", 3)]);

        Assert.Equal(["a2", "a0"], queue.Candidates(10, NoUsage).Select(e => e.Id));
        Assert.Equal(2, queue.Count);
    }
}
