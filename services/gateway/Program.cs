using Platform.Gateway.Accounts;
using Platform.Gateway.Auth;
using Platform.Gateway.Forwarding;
using Platform.Gateway.Jobs;
using Platform.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPlatformDefaults("gateway", typeof(Program).Assembly, bus =>
{
    bus.AddAccounts();
    bus.AddJobs();
});
builder.AddApiKeyAuth();
builder.AddForwarding();

var app = builder.Build();
app.UsePlatformDefaults();
app.UseAuthentication();
app.UseAuthorization();
app.MapAccounts();
app.MapForwardedRoutes();
app.MapJobs();
app.Run();

public partial class Program;
