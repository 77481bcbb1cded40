using Platform.Hosting;
using Platform.Rewards.Accounts;
using Platform.Rewards.Escrow;

var builder = WebApplication.CreateBuilder(args);
builder.AddPlatformDefaults("rewards", typeof(Program).Assembly, bus =>
{
    bus.AddAccounts();
    bus.AddEscrow();
});
builder.Services.AddEscrowOptions();

var app = builder.Build();
app.UsePlatformDefaults();
app.MapAccounts();
app.Run();

public partial class Program;
