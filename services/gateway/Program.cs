using Microsoft.Extensions.FileProviders;
using Platform.Gateway.Accounts;
using Platform.Gateway.Auth;
using Platform.Gateway.Documentation;
using Platform.Gateway.Forwarding;
using Platform.Gateway.Jobs;
using Platform.Gateway.Kernels;
using Platform.Gateway.Limits;
using Platform.Gateway.Receipts;
using Platform.Hosting;

var builder = PlatformDefaults.CreateBuilder(args);
builder.AddPlatformDefaults("gateway", typeof(Program).Assembly, bus =>
{
    bus.AddAccounts();
    bus.AddJobs();
});
builder.AddApiKeyAuth();
builder.AddForwarding();
builder.Services.AddSingleton<TensorHeaders>();
builder.Services.AddOptions<SubmissionOptions>().BindConfiguration(SubmissionOptions.SectionName);
builder.Services.AddSingleton<SubmissionGroupCommit>();
builder.Services.AddSingleton<JobChangeSignal>();
builder.Services.AddHostedService(services => services.GetRequiredService<JobChangeSignal>());
builder.AddRequestLimits();
builder.AddReceipts();
builder.AddApiDocument();

var app = builder.Build();
app.UsePlatformDefaults();
app.UseHeaderSizeLimit();
// The dashboard (wwwroot) is public static files in front of the API: middleware, not endpoints, so the route
// table stays the API's. no-cache: browsers revalidate (ETag) and never run a stale module after an upgrade.
// The files are read from beside the gateway's assembly (the build copies them there), not from the working
// directory, which is the repository root under ./platform up and anything at all under an operator's service
// manager.
var dashboard = new PhysicalFileProvider(Path.Combine(AppContext.BaseDirectory, "wwwroot"));
app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = dashboard });
app.UseStaticFiles(new StaticFileOptions { FileProvider = dashboard, OnPrepareResponse = file => file.Context.Response.Headers.CacheControl = "no-cache" });
app.UseKeyLookupGuard();
app.UseAuthentication();
app.UseRateLimiter();
app.UseRequestSizeLimit();
app.UseAuthorization();
app.MapAccounts();
app.MapNodeKeys();
app.MapForwardedRoutes();
app.MapJobs();
app.MapJobBatches();
app.MapReceipts();
app.MapKernels();
app.MapOpenApi().AllowAnonymous();
app.Run();

public partial class Program;
