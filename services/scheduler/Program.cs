using Platform.Hosting;
using Platform.Hosting.Http;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Metrics;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;

var builder = PlatformDefaults.CreateBuilder(args);
builder.AddPlatformDefaults("scheduler", typeof(Program).Assembly, bus =>
{
    bus.AddJobs();
    bus.AddWorkers();
    bus.AddNodeIntake();
});
builder.Services.AddPlacement();
builder.Services.AddVerification();
builder.Services.AddInputCheck();
builder.Services.AddNodes(builder.Configuration);
builder.Services.AddGatewayProof();
builder.Services.AddSchedulerMetrics();
builder.Services.AddHostedService<NetworkSampler>();

var app = builder.Build();
app.UsePlatformDefaults();
app.MapNetwork();
app.MapNodes();
app.Run();

public partial class Program;
