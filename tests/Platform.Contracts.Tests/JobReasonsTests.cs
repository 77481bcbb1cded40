using System.Text.RegularExpressions;

namespace Platform.Contracts.Tests;

public sealed partial class JobReasonsTests
{
    [Fact]
    public void Every_reason_has_one_entry_a_plain_sentence_and_a_known_ending()
    {
        Assert.Equal(JobReasons.All.Count, JobReasons.All.Select(r => r.Code).Distinct().Count());
        foreach (var reason in JobReasons.All)
        {
            Assert.Matches("^[a-z]+(_[a-z]+)*$", reason.Code);
            Assert.Contains(reason.Ends, new[] { "completed", "failed", "rejected", "cancelled", "attempt" });
            Assert.True(char.IsUpper(reason.Sentence[0]) && reason.Sentence.EndsWith('.'), $"{reason.Code}: '{reason.Sentence}' is not a sentence");
            Assert.True(reason.NextStep is null || reason.NextStep.EndsWith('.'), $"{reason.Code}: next step '{reason.NextStep}'");
        }
        // Every terminal status has at least one way to get there.
        foreach (var status in new[] { "completed", "failed", "rejected", "cancelled" })
            Assert.Contains(JobReasons.All, r => r.Ends == status);
    }

    [Fact]
    public void A_sentence_detail_is_the_message_a_short_detail_completes_the_catalogue_sentence()
    {
        Assert.Equal("Worker w1 stopped sending heartbeats for longer than the 60 s grace period.",
            JobReasons.Message(JobReasons.WorkerLost, "Worker w1 stopped sending heartbeats for longer than the 60 s grace period."));
        Assert.Equal("The worker failed on its own side (not because of the job), so the job was given to another worker: the worker failed: IOException.",
            JobReasons.Message(JobReasons.WorkerError, "the worker failed: IOException"));
        Assert.Equal(JobReasons.Find(JobReasons.CancelledByClient)!.Sentence, JobReasons.Message(JobReasons.CancelledByClient, null));
        var credits = JobReasons.Message(JobReasons.InsufficientCredits, "the job costs 5 credits and the account has 2");
        Assert.EndsWith("has 2. Buy or earn credits, or lower the price with a smaller job.", credits, StringComparison.Ordinal);
        Assert.Equal("The job ended (made_up).", JobReasons.Message("made_up", null));
        Assert.Equal("60 s", JobReasons.Duration(TimeSpan.FromSeconds(60)));
        Assert.Equal("1.5 s", JobReasons.Duration(TimeSpan.FromMilliseconds(1500)));
        Assert.Equal("5 min", JobReasons.Duration(TimeSpan.FromMinutes(5)));
    }

    /// <summary>
    /// Every reason code the services write (worker failures, scheduler endings, rewards rejections, SQL) is in the
    /// catalogue, so no ending reaches a client without its sentence.
    /// </summary>
    [Fact]
    public void Every_reason_the_services_write_is_in_the_catalogue()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Platform.sln")))
            root = root.Parent;
        Assert.NotNull(root);
        var written = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root.FullName, "services"), "*.*", SearchOption.AllDirectories)
                     .Where(f => (f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".sql", StringComparison.Ordinal))
                                 && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                                 && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var text = File.ReadAllText(file);
            foreach (var pattern in new[] { WorkerFailure(), ReasonProperty(), ReasonTuple(), ReasonSql() })
                foreach (Match m in pattern.Matches(text))
                    written.Add(m.Groups["code"].Value);
        }
        Assert.Contains("input_too_large", written); // the scan sees the workers' failures
        Assert.Contains("insufficient_credits", written); // and rewards' rejections
        var missing = written.Where(code => JobReasons.Find(code) is null).ToList();
        Assert.True(missing.Count == 0, $"reason codes without a catalogue entry: {string.Join(", ", missing)}");
    }

    [GeneratedRegex("""Fail\("(?<code>[a-z_]+)",""")]
    private static partial Regex WorkerFailure();

    [GeneratedRegex("Reason = \"(?<code>[a-z_]+)\"")]
    private static partial Regex ReasonProperty();

    [GeneratedRegex("""=> \("(?<code>[a-z_]+)", \$""")]
    private static partial Regex ReasonTuple();

    [GeneratedRegex("""reason = '(?<code>[a-z_]+)'""")]
    private static partial Regex ReasonSql();
}
