using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;

namespace Platform.Rewards.Staking;

/// <summary>
/// A worker's result was found wrong: its operator loses <see cref="StakingOptions.SlashFraction"/> of its stake
/// to the fees account, once per penalized attempt. An operator with no stake loses nothing.
/// </summary>
public sealed class WorkerPenalizedConsumer(NpgsqlDataSource db, MessageOutbox outbox, IOptions<StakingOptions> options, TimeProvider clock, ILogger<WorkerPenalizedConsumer> logger)
    : IConsumer<WorkerPenalized>
{
    public async Task Consume(ConsumeContext<WorkerPenalized> context)
    {
        var penalty = context.Message;
        var slashed = await Stakes.SlashAsync(db, outbox, penalty, options.Value.SlashFraction, clock.GetUtcNow(), context.CancellationToken);
        if (slashed > 0)
            logger.LogInformation("Slashed {Amount} credits of operator {Operator} for attempt {Attempt} ({Reason})", slashed, penalty.OperatorAccountId, penalty.AttemptId, penalty.Reason);
    }
}
