using Platform.Hosting;
using Platform.Storage.Blobs;

var builder = WebApplication.CreateBuilder(args);
builder.AddPlatformDefaults("storage", typeof(Program).Assembly);
builder.AddBlobs();

var app = builder.Build();
app.UsePlatformDefaults();
app.MapBlobs();
app.Run();

public partial class Program;
