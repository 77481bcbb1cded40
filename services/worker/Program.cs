using Platform.Hosting;
using Platform.Worker.Attempts;
using Platform.Worker.Node;

var builder = WebApplication.CreateBuilder(args);
// The node enrolls through the gateway with the node key its operator made before anything else: the broker login its bus
// uses comes from there. It holds no service credential.
if (await builder.AddNodeAsync() is not { } node)
    return 1;
builder.AddPlatformDefaults("worker", typeof(Program).Assembly, bus => bus.AddAttempts(node), node.Enrollment.BusLogin);
builder.AddAttemptServices();

var app = builder.Build();
app.UsePlatformDefaults();
await app.RunAsync();
return 0;

public partial class Program;
