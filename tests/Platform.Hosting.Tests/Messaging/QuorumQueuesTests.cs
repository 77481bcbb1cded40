using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Platform.Contracts.Messages;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Hosting.Tests.Messaging;

/// <summary>RabbitMq:QuorumQueues declares every receive endpoint as a quorum queue; without it they stay classic.</summary>
public sealed class QuorumQueuesTests : IAsyncLifetime
{
    private const string Queue = "hostingtest-quorum-probe";
    private TestEnvironment _env = null!;

    public async Task InitializeAsync() => _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-quorum");

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Theory]
    [InlineData("true", "quorum")]
    [InlineData("false", "classic")]
    [InlineData(null, "classic")]
    public async Task The_switch_decides_the_type_of_every_receive_endpoint(string? setting, string expectedType)
    {
        // Read from configuration as the services read it (RabbitMq__QuorumQueues).
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(setting is null ? [] : new Dictionary<string, string?> { ["RabbitMq:QuorumQueues"] = setting })
            .Build();
        var queue = $"{Queue}-{setting ?? "unset"}";
        await using (var host = await RunningHost.StartAsync(_env, services => services.AddPlatformBus(RunningHost.Service, _env.RabbitMqUri,
                         x => x.AddConsumer<QuorumProbeConsumer>().Endpoint(e => e.Name = queue),
                         configuration.GetSection(RabbitMqOptions.SectionName).Get<RabbitMqOptions>())))
        {
            var bus = host.Get<IBusControl>();
            await Eventually.UntilAsync(() => Task.FromResult(bus.CheckHealth().Status), s => s == BusHealthStatus.Healthy, TimeSpan.FromSeconds(30), "the bus to be healthy");

            Assert.Equal(expectedType, await QueueTypeAsync(queue));
        }
    }

    /// <summary>The queue's type as the broker reports it (management API: GET /api/queues/{vhost}/{name}).</summary>
    private async Task<string> QueueTypeAsync(string queue)
    {
        using var response = await _env.Infrastructure.RabbitMqManagement.GetAsync(
            new Uri($"api/queues/{Uri.EscapeDataString(_env.Name)}/{Uri.EscapeDataString(queue)}", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        // "type" is the declared type; a quorum queue also carries the x-queue-type argument it was declared with.
        var type = json.RootElement.GetProperty("type").GetString()!;
        if (type == "quorum")
            Assert.Equal("quorum", json.RootElement.GetProperty("arguments").GetProperty("x-queue-type").GetString());
        return type;
    }
}

internal sealed class QuorumProbeConsumer : IConsumer<JobFunded>
{
    public Task Consume(ConsumeContext<JobFunded> context) => Task.CompletedTask;
}
