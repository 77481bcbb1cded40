using Platform.Worker.Node;

namespace Platform.Worker.Tests.Node;

/// <summary>When the node gives memory back after work (<see cref="MemoryTrim"/>'s schedule).</summary>
public sealed class IdleSpellTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 6, 9, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan After = TimeSpan.FromSeconds(5);

    private static DateTimeOffset At(int seconds) => Start.AddSeconds(seconds);

    [Fact]
    public void The_trim_is_due_once_per_idle_spell_after_the_idle_time()
    {
        var spell = new IdleSpell(After, Start);

        Assert.False(spell.Due(At(4), running: 0, ended: 0));
        Assert.True(spell.Due(At(5), running: 0, ended: 0));
        Assert.False(spell.Due(At(6), running: 0, ended: 0)); // once: an idle node is not trimmed every second
        Assert.False(spell.Due(At(60), running: 0, ended: 0));
    }

    [Fact]
    public void A_running_attempt_postpones_the_trim_until_the_idle_time_after_it()
    {
        var spell = new IdleSpell(After, Start);
        Assert.True(spell.Due(At(5), running: 0, ended: 0));

        Assert.False(spell.Due(At(10), running: 1, ended: 0));
        Assert.False(spell.Due(At(14), running: 0, ended: 1));
        Assert.False(spell.Due(At(18), running: 0, ended: 1));
        Assert.True(spell.Due(At(19), running: 0, ended: 1));
    }

    [Fact]
    public void An_attempt_that_began_and_ended_between_two_looks_still_makes_the_trim_due_again()
    {
        // A large job can take less than the second between two looks: no look sees it running, but it ended.
        var spell = new IdleSpell(After, Start);
        Assert.True(spell.Due(At(5), running: 0, ended: 0));

        Assert.False(spell.Due(At(30), running: 0, ended: 1));
        Assert.False(spell.Due(At(34), running: 0, ended: 1));
        Assert.True(spell.Due(At(35), running: 0, ended: 1));
    }
}
