using Platform.Hosting;
using Platform.Worker.Attempts;
using Platform.Worker.Node;

var builder = WebApplication.CreateBuilder(args);
var identity = builder.AddNode();
builder.AddPlatformDefaults("worker", typeof(Program).Assembly, bus => bus.AddAttempts(identity));
builder.AddAttemptServices();

var app = builder.Build();
app.UsePlatformDefaults();
app.Run();

public partial class Program;
