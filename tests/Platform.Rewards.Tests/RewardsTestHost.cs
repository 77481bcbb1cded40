using Dapper;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Outbox;
using Platform.Rewards.Accounts;
using Platform.Rewards.Escrow;
using Platform.Rewards.Ledger;
using Platform.Rewards.Staking;
using Platform.Testing;

namespace Platform.Rewards.Tests;

/// <summary>
/// Every rewards consumer on the MassTransit test harness against a real Postgres database of its own, with
/// helpers to open accounts, stake, build messages and check the ledger's invariants.
/// </summary>
public sealed class RewardsTestHost : IAsyncDisposable
{
    private readonly TestEnvironment _env;
    private readonly ConsumerTestHost _host;

    private RewardsTestHost(TestEnvironment env, ConsumerTestHost host)
    {
        _env = env;
        _host = host;
    }

    public ConsumerTestHost Consumers => _host;
    public ITestHarness Harness => _host.Harness;
    public Npgsql.NpgsqlDataSource Database => _host.Database;
    public PricingOptions Pricing => _host.Services.GetRequiredService<IOptions<PricingOptions>>().Value;

    public static async Task<RewardsTestHost> StartAsync(string name, Action<IServiceCollection>? configure = null, Action<IBusRegistrationConfigurator>? bus = null)
    {
        var env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync(name);
        var host = await ConsumerTestHost.StartAsync(env, "rewards", typeof(Program).Assembly, x =>
        {
            x.AddAccounts();
            x.AddEscrow();
            x.AddStaking();
            bus?.Invoke(x);
        }, services =>
        {
            services.AddEscrowOptions();
            services.AddStakingOptions();
            configure?.Invoke(services);
        });
        return new RewardsTestHost(env, host);
    }

    /// <summary>Stops rewards and fails the test if any consumer threw while it ran (<see cref="ConsumerTestHost.DisposeAsync"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.DisposeAsync();
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }

    public async Task<AccountId> OpenAsync(string role, decimal credits)
    {
        var id = AccountId.New();
        var response = await Harness.GetRequestClient<OpenAccount>().GetResponse<AccountOpened>(
            new OpenAccount { AccountId = id, Role = role, InitialCredits = credits, OccurredAt = DateTimeOffset.UtcNow });
        Assert.Equal(credits, response.Message.Balance);
        return id;
    }

    /// <summary>Stakes through the same code the HTTP endpoint calls.</summary>
    public Task<StakeResult> StakeAsync(AccountId operatorAccount, decimal amount, string? key = null) =>
        Stakes.MoveAsync(Database, _host.Services.GetRequiredService<MessageOutbox>(), operatorAccount.Value, amount, unstake: false,
            $"stake:{operatorAccount}:{key ?? Guid.NewGuid().ToString("N")}", DateTimeOffset.UtcNow, TimeSpan.FromDays(1), CancellationToken.None);

    /// <summary>
    /// Publishes <paramref name="message"/> <paramref name="times"/> times, each under a new message id as a
    /// redelivery after a lost acknowledgement looks, waiting for each to be handled without a fault.
    /// </summary>
    public async Task PublishAsync<T>(T message, int times = 1) where T : class
    {
        for (var i = 0; i < times; i++)
            await _host.PublishHandledAsync(message);
    }

    public async Task<decimal> BalanceAsync(string account)
    {
        await using var connection = await Database.OpenConnectionAsync();
        // People's accounts and stakes keep a balance row; the system accounts' balance is the sum of their postings.
        return await connection.ExecuteScalarAsync<decimal>(
            CreditLedger.IsSystem(account)
                ? "select coalesce(sum(amount), 0) from postings where account_id = @account"
                : "select coalesce((select balance from accounts where id = @account), 0)",
            new { account });
    }

    /// <summary>
    /// The status of each of these jobs' escrow rows, and how many transactions wrote the rows last (their xmin):
    /// how few transactions a burst of messages about them took.
    /// </summary>
    public async Task<(IReadOnlyList<string> Statuses, int Transactions)> EscrowsAsync(IEnumerable<JobId> jobs)
    {
        await using var connection = await Database.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(string Status, string Txid)>(
            "select status, xmin::text from escrows where job_id = any(@ids)", new { ids = jobs.Select(j => j.Value).ToArray() })).ToList();
        return (rows.Select(r => r.Status).ToList(), rows.Select(r => r.Txid).Distinct().Count());
    }

    public Task<decimal> StakedAsync(AccountId operatorAccount) => BalanceAsync(CreditLedger.StakeOf(operatorAccount.Value));

    /// <summary>The StakeChanged messages committed for an operator, oldest first.</summary>
    public async Task<IReadOnlyList<(decimal Staked, long Version)>> StakeChangesAsync(AccountId operatorAccount)
    {
        await using var connection = await Database.OpenConnectionAsync();
        return (await connection.QueryAsync<(decimal, long)>(
            """
            select (body->>'staked')::numeric, (body->>'version')::bigint from outbox
            where message_type = @type and body->>'operatorAccountId' = @account order by id
            """, new { type = typeof(StakeChanged).FullName, account = operatorAccount.Value })).ToList();
    }

    public static JobSubmitted Submitted(AccountId client, double gflop, int replicas = 1, decimal? maxPrice = null) => new()
    {
        JobId = JobId.New(),
        ClientAccountId = client,
        Spec = new JobSpec
        {
            Kernel = "matmul",
            Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
            Replicas = replicas,
            MaxPrice = maxPrice,
        },
        EstimatedGflop = gflop,
        OccurredAt = DateTimeOffset.UtcNow,
    };

    /// <param name="gflop">What the node says it did: a statistic, which price and mint do not follow.</param>
    /// <param name="joules">The node's joules, which the scheduler checked and accepted (<see cref="AcceptedAttempt.CheckedJoules"/>).</param>
    public static AcceptedAttempt Attempt(AccountId operatorAccount, double gflop, double? joules = null, bool spotCheck = false, WorkerId? worker = null,
        bool mintWithheld = false) => new()
        {
            AttemptId = AttemptId.New(),
            WorkerId = worker ?? WorkerId.New(),
            OperatorAccountId = operatorAccount,
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = gflop, Device = "cpu", Joules = joules, JoulesEstimated = false },
            SpotCheck = spotCheck,
            CheckedJoules = joules,
            MintWithheld = mintWithheld,
        };

    /// <summary>A completion whose top-level attempt is the first accepted one, as the scheduler sends it.</summary>
    public static JobCompleted Completed(JobSubmitted job, params AcceptedAttempt[] accepted) => new()
    {
        JobId = job.JobId,
        ClientAccountId = job.ClientAccountId,
        AttemptId = accepted[0].AttemptId,
        WorkerId = accepted[0].WorkerId,
        OperatorAccountId = accepted[0].OperatorAccountId,
        Kernel = job.Spec.Kernel,
        Outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) },
        Metrics = accepted[0].Metrics,
        Accepted = accepted,
        OccurredAt = DateTimeOffset.UtcNow,
    };

    public static WorkerPenalized Penalized(AccountId operatorAccount, JobId? job = null) => new()
    {
        JobId = job ?? JobId.New(),
        AttemptId = AttemptId.New(),
        WorkerId = WorkerId.New(),
        OperatorAccountId = operatorAccount,
        Reason = "verification_failed",
        Detail = "result disagreed with the accepted one",
        OccurredAt = DateTimeOffset.UtcNow,
    };

    /// <summary>
    /// The ledger's invariants: every transaction sums to zero, all postings together sum to zero, every balance
    /// row equals its postings and none but the mint source is below zero (escrow and fees included), and no job
    /// paid and minted its operators more than its client paid for it (DESIGN section 8, invariant 8).
    /// </summary>
    public async Task AssertLedgerBalancedAsync()
    {
        await using var connection = await Database.OpenConnectionAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("select count(*) from (select transaction_id from postings group by transaction_id having sum(amount) <> 0) t"));
        Assert.Equal(0m, await connection.ExecuteScalarAsync<decimal>("select coalesce(sum(amount), 0) from postings"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>(
            """
            select count(*) from accounts a
            where a.id not like 'sys:%'
              and (a.balance < 0 or a.balance <> (select coalesce(sum(p.amount), 0) from postings p where p.account_id = a.id))
            """));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>(
            "select count(*) from (select account_id from postings where account_id like 'sys:%' and account_id <> 'sys:mint' group by account_id having sum(amount) < 0) n"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>(OverpaidJobs));
    }

    /// <summary>
    /// Jobs whose operators got more (payouts, mints, bonuses) than the client paid (its escrow less its refund):
    /// invariant 8, none allowed.
    /// </summary>
    public const string OverpaidJobs = """
        select count(*) from (
            select t.job_id,
                   coalesce(sum(p.amount) filter (where p.kind in ('payout', 'mint', 'efficiency-bonus')), 0) as earned,
                   -coalesce(sum(p.amount) filter (where p.kind in ('escrow', 'refund') and p.account_id not like 'sys:%'), 0) as paid
            from postings p join transactions t on t.id = p.transaction_id
            where t.job_id is not null
            group by t.job_id) j
        where j.earned > j.paid
        """;
}
