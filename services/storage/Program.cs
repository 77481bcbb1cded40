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
// Uploads arrive in Kestrel's 4 KiB blocks: receiving straight into a block (rather than first waiting for data with
// an empty read) halves the receive calls, and 8 MiB of body may wait in memory while a chunk is hashed, so the socket
// keeps being read meanwhile (1 MiB, the default, is one chunk). bench/README.md has the profile.
builder.WebHost.UseSockets(o => o.WaitForDataBeforeAllocatingBuffer = false);
builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBufferSize = 8 << 20);

var app = builder.Build();
app.UsePlatformDefaults();
app.MapBlobs();
app.MapDatasets();
app.Run();

public partial class Program;
