using Dapper;
using MassTransit.Testing;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Testing;

namespace Platform.Rewards.Tests.Escrow;

/// <summary>The rewards consumers against a real Postgres, driven through the MassTransit test harness.</summary>
public sealed class EscrowConsumersTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private RewardsTestHost _rewards = null!;
    private ConsumerTestHost _host = null!;
    private ITestHarness Harness => _rewards.Harness;

    public async Task InitializeAsync()
    {
        _rewards = await RewardsTestHost.StartAsync("rewards-escrow");
        _host = _rewards.Consumers;
    }

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    private Task<AccountId> OpenAsync(string role, decimal credits) => _rewards.OpenAsync(role, credits);

    private Task<decimal> BalanceAsync(string account) => _rewards.BalanceAsync(account);

    private static JobSubmitted Submitted(AccountId client, double gflop, decimal? maxPrice = null) => RewardsTestHost.Submitted(client, gflop, maxPrice: maxPrice);

    /// <summary>Submits a job and waits until rewards has escrowed it.</summary>
    private async Task<JobSubmitted> FundedAsync(AccountId client, double gflop)
    {
        var job = Submitted(client, gflop);
        await Harness.Bus.Publish(Bundle.Of(job));
        Assert.True(await Harness.AnyPublished<JobFunded>(m => m.JobId == job.JobId));
        return job;
    }

    // Without Accepted, as schedulers before replicas sent it: settlement must fall back to the top-level attempt.
    private static JobCompleted Completed(JobSubmitted job, AccountId operatorAccount, double gflop) => new()
    {
        JobId = job.JobId,
        ClientAccountId = job.ClientAccountId,
        AttemptId = AttemptId.New(),
        WorkerId = WorkerId.New(),
        OperatorAccountId = operatorAccount,
        Kernel = job.Spec.Kernel,
        Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
        Metrics = new AttemptMetrics { DurationMs = 1, Gflop = gflop, Device = "cpu" },
        OccurredAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task Funded_job_moves_its_price_from_the_client_into_escrow()
    {
        var client = await OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10); // matmul at 0.5 per GFLOP: 5 credits

        await Harness.Bus.Publish(Bundle.Of(job));

        Assert.True(await Harness.AnyPublished<JobFunded>(m => m.JobId == job.JobId));
        Assert.Equal(95m, await BalanceAsync(client.Value));
        Assert.Equal(5m, await BalanceAsync("sys:escrow"));
    }

    [Fact]
    public async Task A_burst_of_submissions_is_funded_in_a_few_transactions_until_the_balance_runs_out_each_job_once()
    {
        var client = await OpenAsync("client", 150m);
        var jobs = Enumerable.Range(0, 40).Select(_ => Submitted(client, gflop: 10)).ToList(); // 5 credits each: 30 fit

        await Task.WhenAll(jobs.Select(j => Harness.Bus.Publish(Bundle.Of(j))));
        await _host.HandledAsync<JobSubmitted>(m => jobs.Any(j => j.JobId == m.JobId), count: jobs.Count);
        await Task.WhenAll(jobs.Take(5).Select(j => Harness.Bus.Publish(Bundle.Of(j)))); // redelivered: changes nothing
        await _host.HandledAsync<JobSubmitted>(m => jobs.Any(j => j.JobId == m.JobId), count: jobs.Count + 5);

        var (escrows, transactions) = await _rewards.EscrowsAsync(jobs.Select(j => j.JobId));
        output.WriteLine($"{jobs.Count} submissions escrowed in {transactions} transaction(s)");
        Assert.True(transactions <= jobs.Count / 4, $"{jobs.Count} submissions took {transactions} transactions");
        Assert.Equal(30, escrows.Count(e => e == "held"));
        Assert.Equal(10, escrows.Count(e => e == "rejected"));
        Assert.Equal(0m, await BalanceAsync(client.Value));
        Assert.Equal(150m, await BalanceAsync("sys:escrow"));
        await using var db = await _rewards.Database.OpenConnectionAsync();
        Assert.Equal(30, await db.ExecuteScalarAsync<int>("select count(*) from transactions where job_id = any(@ids)", new { ids = jobs.Select(j => j.JobId.Value).ToArray() }));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Job_costing_more_than_the_balance_is_rejected_and_nothing_is_taken()
    {
        var client = await OpenAsync("client", 1m);
        var job = Submitted(client, gflop: 10);

        await Harness.Bus.Publish(Bundle.Of(job));

        var rejected = await Harness.Published.SelectAsync<JobRejected>(m => m.Context.Message.JobId == job.JobId).First();
        Assert.Equal("insufficient_credits", rejected.Context.Message.Reason);
        Assert.Equal(1m, await BalanceAsync(client.Value));
    }

    [Fact]
    public async Task Job_estimated_above_its_max_price_is_rejected()
    {
        var client = await OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10, maxPrice: 1m);

        await Harness.Bus.Publish(Bundle.Of(job));

        var rejected = await Harness.Published.SelectAsync<JobRejected>(m => m.Context.Message.JobId == job.JobId).First();
        Assert.Equal("max_price_exceeded", rejected.Context.Message.Reason);
    }

    [Fact]
    public async Task Completed_job_is_paid_and_minted_once_when_redelivered()
    {
        var client = await OpenAsync("client", 100m);
        var operatorAccount = await OpenAsync("operator", 0m);
        var job = await FundedAsync(client, gflop: 10);

        // Three deliveries, each under its own message id, so no message-id deduplication can hide a double payment.
        var completed = Completed(job, operatorAccount, gflop: 10);
        await Harness.Bus.Publish(Bundle.Of(completed));
        await Harness.Bus.Publish(Bundle.Of(completed));
        await Harness.Bus.Publish(Bundle.Of(completed));
        await _host.HandledAsync<JobCompleted>(m => m.JobId == job.JobId, count: 3);

        // Price 5: operator gets 90% (4.5) and a mint out of the 0.5 fee (1.0 due at 0.1 per GFLOP, capped at the fee).
        Assert.Equal(95m, await BalanceAsync(client.Value));
        Assert.Equal(5m, await BalanceAsync(operatorAccount.Value));
        Assert.Equal(0m, await BalanceAsync("sys:fees"));
        Assert.Equal(0m, await BalanceAsync("sys:escrow"));
        Assert.Equal(1, await _host.OutboxCountAsync<PaymentSettled>(job.JobId.Value));
        Assert.Equal(1, await _host.OutboxCountAsync<CreditsMinted>(job.JobId.Value));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task A_job_whose_mint_rounds_to_zero_is_settled_without_a_mint_transaction()
    {
        var client = await OpenAsync("client", 100m);
        var operatorAccount = await OpenAsync("operator", 0m);
        // 1e-8 GFLOP (a vector-add of a few floats): 0.1 credits per GFLOP mints 1e-9, below the ledger's 6 digits.
        var job = await FundedAsync(client, gflop: 1e-8);

        await Harness.Bus.Publish(Bundle.Of(Completed(job, operatorAccount, gflop: 1e-8)));
        await _host.HandledAsync<JobCompleted>(m => m.JobId == job.JobId);

        await using var connection = await _rewards.Database.OpenConnectionAsync();
        var keys = (await connection.QueryAsync<string>(
            "select idempotency_key from transactions where job_id = @id order by idempotency_key", new { id = job.JobId.Value })).ToList();
        Assert.Equal([$"escrow:{job.JobId.Value}", $"settle:{job.JobId.Value}"], keys);
        Assert.True(await BalanceAsync(operatorAccount.Value) > 0m, "the operator was paid for the job");
        Assert.Equal(0, await _host.OutboxCountAsync<CreditsMinted>(job.JobId.Value));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task A_settlement_creates_a_new_operators_account_and_stops_inserting_it_once_it_is_known()
    {
        var client = await OpenAsync("client", 100m);
        // Never opened: the first settlement that pays it creates it.
        var operatorAccount = AccountId.New();
        using var statements = new StatementCounter(_rewards.Database);
        var inserts = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            var job = await FundedAsync(client, gflop: 10);
            statements.Clear();
            await Harness.Bus.Publish(Bundle.Of(Completed(job, operatorAccount, gflop: 10)));
            await _host.HandledAsync<JobCompleted>(m => m.JobId == job.JobId);
            inserts.Add(statements.Mentioning("insert into accounts"));
        }

        // The first insert creates it, the second finds it committed (so it is known from then on), the third is not sent.
        Assert.Equal([1, 1, 0], inserts);
        Assert.Equal(15m, await BalanceAsync(operatorAccount.Value));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Theory]
    [InlineData(4)]
    [InlineData(1e14)]
    public async Task The_price_follows_the_networks_estimate_whatever_the_node_says_it_did(double nodeGflop)
    {
        var client = await OpenAsync("client", 100m);
        var operatorAccount = await OpenAsync("operator", 0m);
        var job = await FundedAsync(client, gflop: 10);

        await Harness.Bus.Publish(Bundle.Of(Completed(job, operatorAccount, gflop: nodeGflop)));

        // 10 GFLOP estimated from the shapes: price 5, paid in full, whatever the node's figure.
        var settled = await Harness.FirstPublishedAsync<PaymentSettled>(m => m.JobId == job.JobId);
        Assert.Equal(5m, settled.Cost);
        Assert.Equal(0m, settled.Refunded);
        Assert.Equal(95m, await BalanceAsync(client.Value));
        Assert.Equal(5m, await BalanceAsync(operatorAccount.Value));
    }

    [Fact]
    public async Task Failed_job_refunds_the_whole_escrow_once()
    {
        var client = await OpenAsync("client", 100m);
        var job = await FundedAsync(client, gflop: 10);

        var failed = new JobFailed { JobId = job.JobId, ClientAccountId = client, Reason = "input_invalid", Detail = "bad", OccurredAt = DateTimeOffset.UtcNow };
        await Harness.Bus.Publish(failed);
        await Harness.Bus.Publish(failed);
        await _host.HandledAsync<JobFailed>(m => m.JobId == job.JobId, count: 2);

        Assert.Equal(100m, await BalanceAsync(client.Value));
        Assert.Equal(0m, await BalanceAsync("sys:escrow"));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Cancelled_job_is_refunded_once()
    {
        var client = await OpenAsync("client", 100m);
        var job = await FundedAsync(client, gflop: 10);

        var cancelled = new JobCancelled { JobId = job.JobId, ClientAccountId = client, Reason = "cancelled_by_client", OccurredAt = DateTimeOffset.UtcNow };
        await Harness.Bus.Publish(cancelled);
        await Harness.Bus.Publish(cancelled);
        await _host.HandledAsync<JobCancelled>(m => m.JobId == job.JobId, count: 2);

        Assert.Equal(100m, await BalanceAsync(client.Value));
        Assert.Equal(0m, await BalanceAsync("sys:escrow"));
        await _rewards.AssertLedgerBalancedAsync();
    }

    [Fact]
    public async Task Cancel_that_overtakes_the_submission_leaves_nothing_escrowed()
    {
        var client = await OpenAsync("client", 100m);
        var job = Submitted(client, gflop: 10);

        await _host.PublishHandledAsync(new JobCancelled { JobId = job.JobId, ClientAccountId = client, Reason = "cancelled_by_client", OccurredAt = DateTimeOffset.UtcNow });
        await _host.PublishHandledAsync(job);

        Assert.Equal(100m, await BalanceAsync(client.Value));
        Assert.Equal(0, await _host.OutboxCountAsync<JobFunded>(job.JobId.Value));
    }

    [Fact]
    public async Task Opening_an_account_twice_grants_its_credits_once()
    {
        var id = AccountId.New();
        var open = new OpenAccount { AccountId = id, Role = "client", InitialCredits = 10m, OccurredAt = DateTimeOffset.UtcNow };

        await Harness.GetRequestClient<OpenAccount>().GetResponse<AccountOpened>(open);
        var second = await Harness.GetRequestClient<OpenAccount>().GetResponse<AccountOpened>(open);

        Assert.Equal(10m, second.Message.Balance);
    }
}
