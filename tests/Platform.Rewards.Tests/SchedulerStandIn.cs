using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Rewards.Tests;

/// <summary>
/// Stands in for the scheduler on a test environment's real broker: answers rewards' <see cref="GetOperatorExposure"/>
/// as <see cref="Answer"/> says (null: no answer at all, as a scheduler that is down), and publishes what the
/// scheduler would (a WorkerPenalized).
/// </summary>
public sealed class SchedulerStandIn : IAsyncDisposable
{
    private IBusControl _bus = null!;

    /// <summary>Nothing awaits verification and nothing was penalized, unless a test says otherwise.</summary>
    public Func<AccountId, OperatorExposure?> Answer { get; set; } = Clear;

    public int Asked;

    public static OperatorExposure Clear(AccountId operatorAccount) =>
        new() { OperatorAccountId = operatorAccount, UnverifiedAttempts = 0, PenalizedAttemptIds = [] };

    public IPublishEndpoint Bus => _bus;

    public static async Task<SchedulerStandIn> StartAsync(TestEnvironment env)
    {
        var standIn = new SchedulerStandIn();
        var broker = RabbitMqAddress.Parse(env.RabbitMqUri);
        standIn._bus = MassTransit.Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(broker.Host, broker.Port, broker.VirtualHost, h =>
            {
                h.Username(broker.Username);
                h.Password(broker.Password);
            });
            cfg.ReceiveEndpoint("test-scheduler-operator-exposure", e => e.Handler<GetOperatorExposure>(async context =>
            {
                Interlocked.Increment(ref standIn.Asked);
                if (standIn.Answer(context.Message.OperatorAccountId) is { } answer)
                    await context.RespondAsync(answer);
            }));
        });
        await standIn._bus.StartAsync();
        return standIn;
    }

    public async ValueTask DisposeAsync() => await _bus.StopAsync();
}
