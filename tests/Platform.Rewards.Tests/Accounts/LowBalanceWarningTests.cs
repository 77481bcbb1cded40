using Dapper;
using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Tests.Accounts;

/// <summary>
/// AccountBalanceLow: queued by the ledger posting that takes a balance from at or above the account's threshold to
/// below it, once per crossing, on the rewards consumers and a real Postgres. The threshold is set in the table
/// here; the endpoint that sets it is tested in <see cref="LowBalanceApiTests"/>.
/// </summary>
public sealed class LowBalanceWarningTests : IAsyncLifetime
{
    private const double Gflop = 1000;
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-low-balance");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    /// <summary>What one job of <see cref="Gflop"/> escrows.</summary>
    private decimal Price => _rewards.Pricing.EscrowOf("matmul", Gflop, 1);

    private async Task SetThresholdAsync(AccountId account, decimal? threshold)
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        await connection.ExecuteAsync("update accounts set low_balance_threshold = @threshold where id = @account", new { account = account.Value, threshold });
    }

    /// <summary>The AccountBalanceLow messages committed for the account, oldest first: the outbox records every publish.</summary>
    private async Task<IReadOnlyList<(decimal Balance, decimal Threshold)>> WarningsAsync(AccountId account)
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        return (await connection.QueryAsync<(decimal, decimal)>(
            """
            select (body->>'balance')::numeric, (body->>'threshold')::numeric from outbox
            where message_type = @type and body->>'accountId' = @account order by id
            """, new { type = typeof(AccountBalanceLow).FullName, account = account.Value })).ToList();
    }

    private async Task TopUpAsync(AccountId account, decimal credits)
    {
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        Assert.NotNull(await CreditLedger.PostAsync(tx, $"top-up:{Guid.NewGuid():N}", null,
            [new Posting(CreditLedger.Mint, "grant", -credits), new Posting(account.Value, "grant", credits)], default));
        await tx.CommitAsync();
    }

    [Fact]
    public async Task Escrow_that_crosses_the_threshold_publishes_one_AccountBalanceLow_and_a_second_below_it_none()
    {
        var price = Price;
        var client = await _rewards.OpenAsync("client", 3 * price);
        await SetThresholdAsync(client, 2.5m * price);

        await _rewards.PublishAsync(RewardsTestHost.Submitted(client, Gflop));
        Assert.Equal([(2 * price, 2.5m * price)], await WarningsAsync(client));

        // Still below: no news.
        await _rewards.PublishAsync(RewardsTestHost.Submitted(client, Gflop));
        Assert.Equal(price, await _rewards.BalanceAsync(client.Value));
        Assert.Single(await WarningsAsync(client));

        // The queued row is a message the relay can send: it reaches the bus as an AccountBalanceLow.
        Assert.True(await _rewards.Harness.Published.Any<AccountBalanceLow>(m =>
            m.Context.Message.AccountId == client && m.Context.Message.Balance == 2 * price && m.Context.Message.Threshold == 2.5m * price));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Going_back_above_the_threshold_rearms_it_and_the_next_crossing_publishes_again()
    {
        var price = Price;
        var client = await _rewards.OpenAsync("client", 3 * price);
        await SetThresholdAsync(client, 2.5m * price);

        await _rewards.PublishAsync(RewardsTestHost.Submitted(client, Gflop));
        await TopUpAsync(client, price);
        // Exactly at the threshold is not below it.
        await _rewards.PublishAsync(RewardsTestHost.Submitted(client, Gflop / 2));
        var atThreshold = await _rewards.BalanceAsync(client.Value);
        Assert.Equal(2.5m * price, atThreshold);
        await _rewards.PublishAsync(RewardsTestHost.Submitted(client, Gflop));

        Assert.Equal([(2 * price, 2.5m * price), (atThreshold - price, 2.5m * price)], await WarningsAsync(client));
    }

    [Fact]
    public async Task Redelivering_the_escrow_message_three_times_publishes_once()
    {
        var price = Price;
        var client = await _rewards.OpenAsync("client", 3 * price);
        await SetThresholdAsync(client, 2.5m * price);
        var job = RewardsTestHost.Submitted(client, Gflop);

        await _rewards.PublishAsync(job, times: 3);

        Assert.Equal(2 * price, await _rewards.BalanceAsync(client.Value));
        Assert.Single(await WarningsAsync(client));
    }

    [Fact]
    public async Task A_pin_fee_that_crosses_the_threshold_warns_once_however_often_it_is_asked()
    {
        var fee = _rewards.Pricing.PinFeeOf(3L << 30);
        var client = await _rewards.OpenAsync("client", 2 * fee);
        await SetThresholdAsync(client, 1.5m * fee);
        var pin = new ChargePinFee { Cid = Cid.Compute(Guid.NewGuid().ToByteArray()), Owner = client, Size = 3L << 30 };

        for (var i = 0; i < 3; i++)
            await _rewards.Harness.GetRequestClient<ChargePinFee>().GetResponse<PinFeeCharged, PinFeeRefused>(pin);

        Assert.Equal([(fee, 1.5m * fee)], await WarningsAsync(client));
    }

    [Fact]
    public async Task Accounts_without_a_threshold_or_never_below_it_get_no_warning()
    {
        var price = Price;
        var none = await _rewards.OpenAsync("client", 3 * price);
        var high = await _rewards.OpenAsync("client", 3 * price);
        await SetThresholdAsync(high, price);

        await _rewards.PublishAsync(RewardsTestHost.Submitted(none, Gflop));
        await _rewards.PublishAsync(RewardsTestHost.Submitted(high, Gflop));

        Assert.Empty(await WarningsAsync(none));
        Assert.Empty(await WarningsAsync(high));
    }

    [Fact]
    public async Task One_transaction_taking_two_accounts_below_their_thresholds_warns_each_once()
    {
        // The first balance (in account order) is updated in the posting's statement, the others one statement
        // each: both paths warn, and a replay of the transaction neither moves credits nor warns again.
        var a = await _rewards.OpenAsync("client", 10m);
        var b = await _rewards.OpenAsync("client", 10m);
        await SetThresholdAsync(a, 5m);
        await SetThresholdAsync(b, 5m);
        var key = $"two:{Guid.NewGuid():N}";

        for (var i = 0; i < 2; i++)
        {
            await using var connection = await _rewards.Database.OpenConnectionAsync();
            await using var tx = await connection.BeginTransactionAsync();
            await CreditLedger.PostAsync(tx, key, null,
                [new Posting(a.Value, "pin-fee", -6m), new Posting(b.Value, "pin-fee", -7m), new Posting(CreditLedger.Fees, "pin-fee", 13m)], default);
            await tx.CommitAsync();
        }

        Assert.Equal([(4m, 5m)], await WarningsAsync(a));
        Assert.Equal([(3m, 5m)], await WarningsAsync(b));
        await _rewards.AssertLedgerBalancedAsync();
    }
}
