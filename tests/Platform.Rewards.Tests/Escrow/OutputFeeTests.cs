using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Escrow;
using Platform.Testing;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>
/// A job pays for keeping its output forever, by the size the kernel's shape model planned (JobSubmitted.OutputBytes),
/// once however many replicas computed it, into the network's fees: a degenerate shape's huge output is not kept for
/// the price of a little work.
/// </summary>
public sealed class OutputFeeTests : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-output-fee");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    [Fact]
    public void Output_fee_is_the_pin_fee_by_size_without_its_minimum_and_a_tiny_output_adds_nothing()
    {
        var pricing = new PricingOptions();

        Assert.Equal(3m, pricing.OutputFeeOf(3L << 30));
        Assert.Equal(0.000977m, pricing.OutputFeeOf(1L << 20)); // 1 MiB at 1 credit per GiB
        Assert.Equal(0m, pricing.OutputFeeOf(12)); // vector-add of three floats: rounds to nothing
        Assert.Equal(0m, pricing.OutputFeeOf(0));
        Assert.Equal(0m, pricing.OutputFeeOf(-5)); // nothing a message says makes a negative fee
        Assert.Equal(0m, new PricingOptions { PinFeePerGib = 0m }.OutputFeeOf(3L << 30));
        // Escrowed once, beside the price per replica.
        Assert.Equal(5m * 2 + 3m, pricing.EscrowOf("matmul", 10, replicas: 2, outputBytes: 3L << 30));
    }

    [Fact]
    public void Output_fee_goes_to_the_fees_after_the_work_and_is_cut_to_what_the_escrow_holds()
    {
        var pricing = new PricingOptions();
        var paid = Attempt(AccountId.New(), 10);

        var settlement = Settlement.Of(escrowed: 8m, "matmul", networkGflop: 10, outputBytes: 3L << 30, [paid], pricing);

        // The work (5) first, its 10% fee and the operator's 4.5; the output fee gets the 3 left of the escrow.
        Assert.Equal(8m, settlement.Cost);
        Assert.Equal(3m, settlement.OutputFee);
        Assert.Equal(0.5m, settlement.Fee);
        Assert.Equal(4.5m, Assert.Single(settlement.Payouts).Amount);
        Assert.Equal(0m, settlement.Refund);
        var postings = settlement.Postings("acc_client");
        Assert.Equal(0m, postings.Sum(p => p.Amount));
        Assert.Equal(3m, Assert.Single(postings, p => p.Kind == "output-fee").Amount);

        // An escrow taken before the gateway sent output sizes holds only the work: no output fee is taken from it.
        var older = Settlement.Of(escrowed: 5m, "matmul", networkGflop: 10, outputBytes: 3L << 30, [paid], pricing);
        Assert.Equal(0m, older.OutputFee);
        Assert.Equal(5m, older.Cost);
        Assert.Equal(0m, older.Postings("acc_client").Sum(p => p.Kind == "output-fee" ? p.Amount : 0m));
    }

    [Fact]
    public async Task A_job_with_a_large_planned_output_escrows_and_pays_its_output_fee_once_and_the_operators_share_is_the_works()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var (a, b) = (await _rewards.OpenAsync("operator", 0m), await _rewards.OpenAsync("operator", 0m));
        // 10 GFLOP of matmul is 5 credits a replica, two replicas; keeping a planned 3 GiB output costs 3, once.
        var job = Submitted(client, gflop: 10, replicas: 2) with { OutputBytes = 3L << 30 };
        await _rewards.PublishAsync(job);
        Assert.Equal(87m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(13m, await _rewards.BalanceAsync("sys:escrow"));

        await _rewards.PublishAsync(Completed(job, Attempt(a, 10), Attempt(b, 10)), times: 2);

        // Each operator: 90% of its replica's 5, and half of the work's fee of 1 as its mint (2 due, capped at 1).
        // The output fee is not the operators': the fees account keeps all 3 of it.
        Assert.Equal(87m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(5m, await _rewards.BalanceAsync(a.Value));
        Assert.Equal(5m, await _rewards.BalanceAsync(b.Value));
        Assert.Equal(3m, await _rewards.BalanceAsync("sys:fees"));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:escrow"));
        var settled = await _rewards.Harness.FirstPublishedAsync<PaymentSettled>(m => m.JobId == job.JobId);
        Assert.Equal(13m, settled.Cost);
        Assert.Equal(0m, settled.Refunded);
        Assert.Equal(9m, settled.OperatorPaid);
        await using var connection = await _rewards.Database.OpenConnectionAsync();
        var outputFees = await connection.QueryAsync<decimal>(
            "select p.amount from postings p join transactions t on t.id = p.transaction_id where t.idempotency_key = @key and p.kind = 'output-fee'",
            new { key = $"settle:{job.JobId}" });
        Assert.Equal(3m, Assert.Single(outputFees));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task A_failed_job_refunds_its_output_fee_with_the_rest_of_its_escrow()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10) with { OutputBytes = 3L << 30 };
        await _rewards.PublishAsync(job);
        Assert.Equal(92m, await _rewards.BalanceAsync(client.Value));

        await _rewards.PublishAsync(new JobFailed { JobId = job.JobId, ClientAccountId = client, Reason = "verification_failed", Detail = "the replicas disagreed", OccurredAt = DateTimeOffset.UtcNow });

        Assert.Equal(100m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:fees"));
        await _rewards.AssertLedgerBalancedAsync();
    }
}
