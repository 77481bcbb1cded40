using Platform.Hosting;
using Platform.Hosting.Http;
using Platform.Rewards.Accounts;
using Platform.Rewards.Escrow;
using Platform.Rewards.Metrics;
using Platform.Rewards.Staking;
using Platform.Rewards.Webhooks;

var builder = PlatformDefaults.CreateBuilder(args);
builder.AddPlatformDefaults("rewards", typeof(Program).Assembly, bus =>
{
    bus.AddAccounts();
    bus.AddEscrow();
    bus.AddStaking();
    bus.AddWebhooks();
});
builder.Services.AddEscrowOptions();
builder.Services.AddStakingOptions();
builder.Services.AddGatewayProof();
builder.Services.AddWebhookSender();
builder.Services.AddRewardsMetrics();

var app = builder.Build();
app.UsePlatformDefaults();
app.MapAccounts();
app.MapStakes();
app.MapWebhooks();
app.Run();

public partial class Program;
