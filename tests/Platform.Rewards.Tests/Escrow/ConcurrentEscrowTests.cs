using Dapper;
using Platform.Contracts.Messages;
using Platform.Testing;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>Many jobs escrowed at once from one account: the balance is never overdrawn and exactly what fits is funded.</summary>
public sealed class ConcurrentEscrowTests : IAsyncLifetime
{
    private const int Consumers = 48;
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() =>
        _rewards = await RewardsTestHost.StartAsync("rewards-concurrent-escrow", bus: x =>
            x.AddConfigureEndpointsCallback((_, _, endpoint) => endpoint.ConcurrentMessageLimit = Consumers));

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    [Fact]
    public async Task Thousand_concurrent_escrows_fund_exactly_what_the_balance_covers()
    {
        const int jobs = 1000;
        const decimal balance = 1234.5m, price = 5m; // matmul, 10 GFLOP
        var client = await _rewards.OpenAsync("client", balance);
        var submitted = Enumerable.Range(0, jobs).Select(_ => Submitted(client, gflop: 10)).ToList();

        await Task.WhenAll(submitted.Select(job => _rewards.Harness.Bus.Publish(Bundle.Of(job))));

        await using var connection = await _rewards.Database.OpenConnectionAsync();
        await Eventually.UntilAsync(
            () => connection.ExecuteScalarAsync<int>("select count(*) from escrows where client_account_id = @client and status in ('held', 'rejected')", new { client = client.Value }),
            n => n == jobs, TimeSpan.FromSeconds(120), "every job to be funded or rejected");

        var funded = (int)Math.Floor(balance / price);
        Assert.Equal(funded, await connection.ExecuteScalarAsync<int>("select count(*) from escrows where client_account_id = @client and status = 'held'", new { client = client.Value }));
        Assert.Equal(balance - (funded * price), await _rewards.BalanceAsync(client.Value));
        Assert.Equal(funded, await connection.ExecuteScalarAsync<int>("select count(*) from outbox where message_type = @type", new { type = typeof(JobFunded).FullName }));
        Assert.Equal(jobs - funded, await connection.ExecuteScalarAsync<int>(
            "select count(*) from outbox where message_type = @type and body->>'reason' = 'insufficient_credits'", new { type = typeof(JobRejected).FullName }));
        await _rewards.AssertLedgerBalancedAsync();
    }
}
