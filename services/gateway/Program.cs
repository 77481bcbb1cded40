using Platform.Gateway.Accounts;
using Platform.Gateway.Auth;
using Platform.Gateway.Documentation;
using Platform.Gateway.Forwarding;
using Platform.Gateway.Jobs;
using Platform.Gateway.Limits;
using Platform.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPlatformDefaults("gateway", typeof(Program).Assembly, bus =>
{
    bus.AddAccounts();
    bus.AddJobs();
});
builder.AddApiKeyAuth();
builder.AddForwarding();
builder.AddRequestLimits();
builder.AddApiDocument();

var app = builder.Build();
app.UsePlatformDefaults();
app.UseAuthentication();
app.UseRateLimiter();
app.UseRequestSizeLimit();
app.UseAuthorization();
app.MapAccounts();
app.MapForwardedRoutes();
app.MapJobs();
app.MapOpenApi().AllowAnonymous();
app.Run();

public partial class Program;
