using Microsoft.Extensions.Options;
using Platform.Hosting;
using Platform.Worker.Attempts;
using Platform.Worker.Metrics;
using Platform.Worker.Node;

var builder = PlatformDefaults.CreateBuilder(args);
// The node enrolls through the gateway with the node key its operator made before anything else: the broker login its bus
// uses comes from there. It holds no service credential.
if (await builder.AddNodeAsync() is not { } node)
    return 1;
builder.AddPlatformDefaults("worker", typeof(Program).Assembly, bus => bus.AddAttempts(node), node.Enrollment.BusLogin);
builder.AddAttemptServices();
// Registered after the bus: hosted services stop in reverse order, so the last beat and WorkerOffline are sent while the
// bus is still running (registered before it, the bus stopped first and cancelled a beat under way as a send fault).
builder.Services.AddHostedService<Presence>();

var app = builder.Build();
NodeMetrics.ObserveSlots(() => app.Services.GetRequiredService<NodeStatus>().ActiveAttempts,
    app.Services.GetRequiredService<IOptions<WorkerOptions>>().Value.Slots);
app.UsePlatformDefaults();
await app.RunAsync();
return 0;

public partial class Program;
