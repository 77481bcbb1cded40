using MassTransit;

namespace Platform.Worker.Node;

/// <summary>
/// The one way this node speaks to the network: every message (presence and attempts) is sent to the node's own
/// exchange, which the network binds into the scheduler's node intake. Never Publish: publishing declares the
/// message type's shared exchange, which the broker refuses a node's login, and would reach every service.
/// </summary>
public sealed class NodeChannel(IBus bus, NodeEnrollment enrollment)
{
    public async Task SendAsync<T>(T message, CancellationToken ct) where T : class
    {
        var endpoint = await bus.GetSendEndpoint(enrollment.ExchangeAddress);
        await endpoint.Send(message, context =>
        {
            // The broker refuses a user_id other than the connection's own login, so the network can read from it
            // which node sent the message.
            if (context.TryGetPayload<RabbitMqSendContext>(out var rabbit))
                rabbit.BasicProperties.UserId = enrollment.Broker.Username;
        }, ct);
    }
}
