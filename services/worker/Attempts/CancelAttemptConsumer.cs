using MassTransit;
using Platform.Contracts.Messages;
using Platform.Worker.Node;

namespace Platform.Worker.Attempts;

/// <summary>Stops a running attempt whose job was cancelled; its slot is free as soon as the kernel returns.</summary>
public sealed class CancelAttemptConsumer(NodeStatus status, ILogger<CancelAttemptConsumer> logger) : IConsumer<CancelAttempt>
{
    public Task Consume(ConsumeContext<CancelAttempt> context)
    {
        logger.LogInformation("Cancelling attempt {AttemptId} of {JobId}", context.Message.AttemptId, context.Message.JobId);
        status.Cancel(context.Message.AttemptId);
        return Task.CompletedTask;
    }
}
