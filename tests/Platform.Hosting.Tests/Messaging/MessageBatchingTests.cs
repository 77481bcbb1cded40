using MassTransit;
using Platform.Hosting.Messaging;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>
/// <see cref="MessageBatching"/>: every batch consumer of the network gets its limits from here, and the quiet period
/// counts from a batch's last message, so a lone message is not held for a full time limit at every batched hop.
/// </summary>
public sealed class MessageBatchingTests
{
    [Fact]
    public void A_batch_closes_when_full_or_after_a_quiet_period_counted_from_its_last_message()
    {
        var options = new BatchOptions();

        new MessageBatching(64, TimeSpan.FromMilliseconds(3), 2).Configure(options);

        Assert.Equal(64, options.MessageLimit);
        Assert.Equal(TimeSpan.FromMilliseconds(3), options.TimeLimit);
        Assert.Equal(BatchTimeLimitStart.FromLast, options.TimeLimitStart);
        Assert.Equal(2, options.ConcurrencyLimit);
    }
}
