using Dapper;
using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Testing;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>
/// JobCompleted consumed in batches: a burst of completions settles in a few transactions with every balance exact,
/// and a completion delivered twice in one batch and again afterwards settles once.
/// </summary>
public sealed class SettlementBatchTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;
    private ConsumerTestHost Host => _rewards.Consumers;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-settle-batch");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    /// <summary>Escrows every job (10 GFLOP of matmul: 5 credits) in one burst and waits until all are funded.</summary>
    private async Task FundAsync(IReadOnlyList<JobSubmitted> jobs)
    {
        await Task.WhenAll(jobs.Select(j => _rewards.Harness.Bus.Publish(Bundle.Of(j))));
        await Host.HandledAsync<JobSubmitted>(m => jobs.Any(j => j.JobId == m.JobId), count: jobs.Count);
        Assert.Equal(jobs.Count * 5m, await _rewards.BalanceAsync("sys:escrow"));
    }

    [Fact]
    public async Task A_burst_of_completions_is_settled_in_a_few_transactions_with_every_balance_exact()
    {
        // Uneven on purpose, so a balance moved by the wrong sum cannot come out right by symmetry: client A has 25
        // of the 40 jobs, client B 15; operator A ran every fourth job (10), operator B the other 30.
        AccountId[] clients = [await _rewards.OpenAsync("client", 200m), await _rewards.OpenAsync("client", 200m)];
        AccountId[] operators = [await _rewards.OpenAsync("operator", 0m), await _rewards.OpenAsync("operator", 0m)];
        var jobs = Enumerable.Range(0, 40).Select(i => Submitted(clients[i < 25 ? 0 : 1], gflop: 10)).ToList();
        await FundAsync(jobs);
        var completions = jobs.Select((job, i) => Completed(job, Attempt(operators[i % 4 == 0 ? 0 : 1], gflop: 10))).ToList();

        await Task.WhenAll(completions.Select(c => _rewards.Harness.Bus.Publish(Bundle.Of(c))));
        await Host.HandledAsync<JobCompleted>(m => jobs.Any(j => j.JobId == m.JobId), count: jobs.Count);

        // The settling transaction is the last to write each escrow row.
        var (escrows, transactions) = await _rewards.EscrowsAsync(jobs.Select(j => j.JobId));
        output.WriteLine($"{jobs.Count} completions settled in {transactions} transaction(s)");
        Assert.True(transactions <= jobs.Count / 4, $"{jobs.Count} completions took {transactions} transactions");
        Assert.Equal(jobs.Count, escrows.Count(e => e == "settled"));

        // Each job: price 5, the operator 4.5 plus a mint of the 0.5 fee (1.0 due, capped at the fee).
        Assert.Equal(200m - 25 * 5m, await _rewards.BalanceAsync(clients[0].Value));
        Assert.Equal(200m - 15 * 5m, await _rewards.BalanceAsync(clients[1].Value));
        Assert.Equal(10 * 5m, await _rewards.BalanceAsync(operators[0].Value));
        Assert.Equal(30 * 5m, await _rewards.BalanceAsync(operators[1].Value));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:escrow"));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:fees"));
        await using var db = await _rewards.Database.OpenConnectionAsync();
        var ids = jobs.Select(j => j.JobId.Value).ToArray();
        Assert.Equal(40, await db.ExecuteScalarAsync<int>("select count(*) from transactions where job_id = any(@ids) and idempotency_key like 'settle:%'", new { ids }));
        Assert.Equal(40, await db.ExecuteScalarAsync<int>("select count(*) from transactions where job_id = any(@ids) and idempotency_key like 'mint:%'", new { ids }));
        foreach (var job in jobs)
        {
            Assert.Equal(1, await Host.OutboxCountAsync<PaymentSettled>(job.JobId.Value));
            Assert.Equal(1, await Host.OutboxCountAsync<CreditsMinted>(job.JobId.Value));
        }
        await _rewards.AssertLedgerBalancedAsync();
        Host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_completion_twice_in_one_batch_and_redelivered_afterwards_is_settled_once()
    {
        var client = await _rewards.OpenAsync("client", 100m);
        var operatorAccount = await _rewards.OpenAsync("operator", 0m);
        using var statements = new StatementCounter(_rewards.Database);
        var settledJobs = new List<JobId>();
        var together = false;
        // Two deliveries at once, each under its own message id as a redelivery after a lost acknowledgement looks,
        // usually share a batch (5 ms); on a busy machine they may not, so a job is tried again until a batch held
        // both, which one escrow lock statement for the pair shows. Every job tried must be settled once either way.
        for (var tries = 0; tries < 5 && !together; tries++)
        {
            var job = Submitted(client, gflop: 10);
            await FundAsync([job]);
            var completed = Completed(job, Attempt(operatorAccount, gflop: 10));
            statements.Clear();
            await Task.WhenAll(_rewards.Harness.Bus.Publish(Bundle.Of(completed)), _rewards.Harness.Bus.Publish(Bundle.Of(completed)));
            await Host.HandledAsync<JobCompleted>(m => m.JobId == job.JobId, count: 2);
            var batches = statements.Mentioning("from escrows where job_id = any");
            output.WriteLine($"try {tries + 1}: the pair took {batches} batch(es)");
            // And once more, later, in a batch of its own.
            await Host.PublishHandledAsync(completed);
            settledJobs.Add(job.JobId);
            together = batches == 1;
        }
        Assert.True(together, "no try delivered the pair in one batch");

        var jobs = settledJobs.Count;
        Assert.Equal(100m - jobs * 5m, await _rewards.BalanceAsync(client.Value));
        Assert.Equal(jobs * 5m, await _rewards.BalanceAsync(operatorAccount.Value));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:escrow"));
        Assert.Equal(0m, await _rewards.BalanceAsync("sys:fees"));
        await using var db = await _rewards.Database.OpenConnectionAsync();
        foreach (var job in settledJobs)
        {
            Assert.Equal(1, await Host.OutboxCountAsync<PaymentSettled>(job.Value));
            Assert.Equal(1, await Host.OutboxCountAsync<CreditsMinted>(job.Value));
            // escrow, settle, mint
            Assert.Equal(3, await db.ExecuteScalarAsync<int>("select count(*) from transactions where job_id = @id", new { id = job.Value }));
        }
        await _rewards.AssertLedgerBalancedAsync();
        Host.AssertNoConsumerFaulted();
    }

    [Fact]
    public async Task A_completion_that_overtook_its_submission_is_retried_while_the_rest_of_its_batch_is_settled_once()
    {
        // Retries as the real bus has them (BusRegistration), shorter: the harness has none of its own.
        await using var rewards = await RewardsTestHost.StartAsync("rewards-settle-retry",
            bus: x => x.AddConfigureEndpointsCallback((_, _, endpoint) => endpoint.UseMessageRetry(r => r.Intervals(100, 200, 500, 1000, 2000))));
        var client = await rewards.OpenAsync("client", 100m);
        var operatorAccount = await rewards.OpenAsync("operator", 0m);
        var funded = Submitted(client, gflop: 10);
        await rewards.Consumers.PublishHandledAsync(funded);
        var late = Submitted(client, gflop: 10);

        await Task.WhenAll(
            rewards.Harness.Bus.Publish(Bundle.Of(Completed(funded, Attempt(operatorAccount, gflop: 10)))),
            rewards.Harness.Bus.Publish(Bundle.Of(Completed(late, Attempt(operatorAccount, gflop: 10)))));
        // The funded job is paid while the batch is retried for the other: its settlement does not wait for the late
        // job's submission, which is published only once the payment is seen. (When the two happened to come in
        // different batches, this holds trivially.)
        await Eventually.UntilAsync(() => rewards.BalanceAsync(operatorAccount.Value), b => b == 5m, TimeSpan.FromSeconds(30),
            "the funded job paid before the late job's submission arrives");
        await rewards.Consumers.PublishHandledAsync(late);
        await rewards.Consumers.HandledAsync<JobCompleted>(m => m.JobId == late.JobId || m.JobId == funded.JobId, count: 2);

        Assert.Equal(90m, await rewards.BalanceAsync(client.Value));
        Assert.Equal(10m, await rewards.BalanceAsync(operatorAccount.Value));
        Assert.Equal(0m, await rewards.BalanceAsync("sys:escrow"));
        foreach (var job in new[] { funded, late })
        {
            Assert.Equal(1, await rewards.Consumers.OutboxCountAsync<PaymentSettled>(job.JobId.Value));
            Assert.Equal(1, await rewards.Consumers.OutboxCountAsync<CreditsMinted>(job.JobId.Value));
        }
        await rewards.AssertLedgerBalancedAsync();
    }
}
