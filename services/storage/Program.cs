using Platform.Hosting;
using Platform.Storage.Blobs;
using Platform.Storage.Datasets;
using Platform.Storage.Metrics;
using Platform.Storage.Replication;

var builder = PlatformDefaults.CreateBuilder(args);
builder.AddPlatformDefaults("storage", typeof(Program).Assembly, bus => bus.AddReplication(builder.Configuration));
builder.AddBlobs();
builder.AddReplicationServices();
builder.Services.AddStorageMetrics();
builder.WebHost.ReceiveUploadsInLargeBlocks();

var app = builder.Build();
app.UsePlatformDefaults();
app.MapBlobs();
app.MapDatasets();
app.Run();

public partial class Program;
