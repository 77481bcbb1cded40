using System.Net;
using System.Text.Json;
using Dapper;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;
using Platform.Testing;

namespace Platform.Rewards.Tests.Staking;

/// <summary>
/// The account endpoints of the rewards service running as a real process on real Postgres and RabbitMQ, called
/// as the gateway calls them (the authenticated account in X-Platform-Account, with its proof).
/// </summary>
public sealed class StakesApiTests() : RewardsApiTest("rewards-stakes-api")
{
    private async Task<IReadOnlyList<(decimal Staked, long Version)>> StakeChangesAsync(string account)
    {
        await using var connection = await Db.OpenConnectionAsync();
        return (await connection.QueryAsync<(decimal, long)>(
            """
            select (body->>'staked')::numeric, (body->>'version')::bigint from outbox
            where message_type = @type and body->>'operatorAccountId' = @account order by id
            """, new { type = typeof(StakeChanged).FullName, account })).ToList();
    }

    [Fact]
    public async Task Operator_stakes_and_the_account_shows_it_and_a_versioned_StakeChanged_is_published()
    {
        var operatorAccount = await OpenAsync("operator", 100m);

        var staked = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 50 }), HttpStatusCode.OK);
        var more = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 20.5m }), HttpStatusCode.OK);

        Assert.Equal(50m, staked.GetProperty("staked").GetDecimal());
        Assert.Equal(70.5m, more.GetProperty("staked").GetDecimal());
        Assert.Equal(29.5m, more.GetProperty("balance").GetDecimal());
        var account = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account", operatorAccount), HttpStatusCode.OK);
        Assert.Equal(70.5m, account.GetProperty("staked").GetDecimal());
        Assert.Equal(29.5m, account.GetProperty("balance").GetDecimal());

        var changes = await StakeChangesAsync(operatorAccount);
        Assert.Equal([(50m, staked.GetProperty("version").GetInt64()), (70.5m, more.GetProperty("version").GetInt64())], changes);
        Assert.True(changes[0].Version < changes[1].Version);
        // The relay publishes them to the real broker.
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await Db.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from outbox where message_type = @type and sent_at is null", new { type = typeof(StakeChanged).FullName }) == 0;
        }, TimeSpan.FromSeconds(30), "the StakeChanged messages to be published");
    }

    [Fact]
    public async Task Clients_may_not_stake()
    {
        var client = await OpenAsync("client", 100m);

        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", client, new { amount = 10 }), HttpStatusCode.Forbidden, "forbidden");
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", client, new { amount = 10 }), HttpStatusCode.Forbidden, "forbidden");
        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/earnings", client), HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Operators_have_no_spending()
    {
        var operatorAccount = await OpenAsync("operator", 100m);

        await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/spending", operatorAccount), HttpStatusCode.Forbidden, "forbidden");
    }

    [Theory]
    [InlineData("""{"amount":0}""")]
    [InlineData("""{"amount":-5}""")]
    [InlineData("""{"amount":1.0000001}""")]
    [InlineData("""{}""")]
    public async Task Invalid_amounts_are_a_validation_problem(string body)
    {
        var operatorAccount = await OpenAsync("operator", 100m);

        var response = await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        await JsonAsync(response, HttpStatusCode.BadRequest, "validation");
    }

    [Fact]
    public async Task Malformed_body_is_a_problem_not_a_crash()
    {
        var operatorAccount = await OpenAsync("operator", 100m);

        var response = await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new StringContent("""{"amount":"ten"}""", System.Text.Encoding.UTF8, "application/json"));

        await JsonAsync(response, HttpStatusCode.BadRequest, "malformed-json");
    }

    [Fact]
    public async Task Staking_more_than_the_balance_is_refused()
    {
        var operatorAccount = await OpenAsync("operator", 10m);

        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 10.000001m }), HttpStatusCode.PaymentRequired, "insufficient-credits");
        Assert.Empty(await StakeChangesAsync(operatorAccount));
    }

    [Fact]
    public async Task Same_idempotency_key_stakes_once_and_a_different_amount_under_it_is_a_conflict()
    {
        var operatorAccount = await OpenAsync("operator", 100m);

        var first = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 30 }, "k-1"), HttpStatusCode.OK);
        var again = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 30 }, "k-1"), HttpStatusCode.OK);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 31 }, "k-1"), HttpStatusCode.Conflict, "idempotency-key-reused");

        Assert.Equal(first.GetProperty("version").GetInt64(), again.GetProperty("version").GetInt64());
        Assert.Equal(30m, again.GetProperty("staked").GetDecimal());
        Assert.Single(await StakeChangesAsync(operatorAccount));
    }

    [Fact]
    public async Task Unstake_returns_credits_when_the_operator_has_not_earned_within_the_unbonding_period()
    {
        var operatorAccount = await OpenAsync("operator", 100m);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 60 }), HttpStatusCode.OK);

        var unstaked = await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 25 }), HttpStatusCode.OK);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 36 }), HttpStatusCode.Conflict, "insufficient-stake");

        Assert.Equal(35m, unstaked.GetProperty("staked").GetDecimal());
        Assert.Equal(65m, unstaked.GetProperty("balance").GetDecimal());
        Assert.Equal([60m, 35m], (await StakeChangesAsync(operatorAccount)).Select(c => c.Staked));
    }

    [Theory]
    [InlineData("payout")]
    [InlineData("mint")]
    [InlineData("slash")]
    public async Task Unstake_is_refused_within_the_unbonding_period_after_a_payout_mint_or_slash(string kind)
    {
        var operatorAccount = await OpenAsync("operator", 100m);
        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 60 }), HttpStatusCode.OK);
        var job = JobId.New().Value;
        if (kind == "slash")
            await PostAsync($"slash:{job}", job, null, new Posting(CreditLedger.StakeOf(operatorAccount), "slash", -1m), new Posting(CreditLedger.Fees, "slash", 1m));
        else
            await PostAsync($"{kind}:{job}", job, null, new Posting(CreditLedger.Mint, kind, -1m), new Posting(operatorAccount, kind, 1m));

        await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/unstake", operatorAccount, new { amount = 10 }), HttpStatusCode.Conflict, "stake-unbonding");
    }

    [Fact]
    public async Task Ledger_pages_newest_first_without_gaps_or_repeats()
    {
        var operatorAccount = await OpenAsync("operator", 100m);
        for (var i = 0; i < 5; i++)
            await JsonAsync(await SendAsync(HttpMethod.Post, "/v1/account/stake", operatorAccount, new { amount = 1 + i }), HttpStatusCode.OK);

        var seen = new List<JsonElement>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await JsonAsync(await SendAsync(HttpMethod.Get, $"/v1/account/ledger?limit=3{(cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor))}", operatorAccount), HttpStatusCode.OK);
            seen.AddRange(page.GetProperty("entries").EnumerateArray());
            cursor = page.GetProperty("nextCursor").GetString();
            pages++;
        }
        while (cursor is not null && pages < 10);

        // The grant and five stakes, each seen on the account and on its stake account: 11 entries.
        Assert.Equal(11, seen.Count);
        Assert.Equal(4, pages);
        var transactions = seen.Select(e => e.GetProperty("transactionId").GetInt64()).ToList();
        Assert.Equal(transactions.OrderDescending(), transactions);
        Assert.Equal(6, transactions.Distinct().Count());
        var last = seen[^1];
        Assert.Equal("grant", last.GetProperty("kind").GetString());
        Assert.Equal($"grant:{operatorAccount}", last.GetProperty("idempotencyKey").GetString());
        Assert.Equal(100m, last.GetProperty("amount").GetDecimal());
        var newest = seen[0];
        Assert.StartsWith($"stake:{operatorAccount}:", newest.GetProperty("idempotencyKey").GetString());
    }

    [Theory]
    [InlineData("limit=0", "invalid-limit")]
    [InlineData("limit=201", "invalid-limit")]
    [InlineData("limit=ten", "invalid-limit")]
    [InlineData("cursor=not-a-cursor", "invalid-cursor")]
    public async Task Bad_ledger_paging_is_a_problem(string query, string type)
    {
        var client = await OpenAsync("client", 1m);

        await JsonAsync(await SendAsync(HttpMethod.Get, $"/v1/account/ledger?{query}", client), HttpStatusCode.BadRequest, type);
    }

    [Fact]
    public async Task Earnings_are_reported_per_worker_and_per_day()
    {
        var operatorAccount = await OpenAsync("operator", 0m);
        var (w1, w2) = (WorkerId.New().Value, WorkerId.New().Value);
        // A day is the UTC day of the ledger's transaction. The transactions are dated here, either side of a UTC
        // midnight, rather than by the database's clock, which the test machine's clock may see on another day.
        var midnight = new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);
        foreach (var (worker, paid, minted, at) in new[]
        {
            (w1, 4.5m, 1m, midnight.AddHours(-14)), (w1, 2m, 0.5m, midnight.AddSeconds(-1)), (w2, 3m, 0.25m, midnight.AddSeconds(1)),
        })
        {
            var job = JobId.New().Value;
            await PostAsync($"settle:{job}", job, null, new Posting(CreditLedger.Escrow, "settle", -paid), new Posting(operatorAccount, "payout", paid, worker));
            await PostAsync($"mint:{job}:a", job, null, new Posting(CreditLedger.Mint, "mint", -minted), new Posting(operatorAccount, "mint", minted, worker));
            await using var connection = await Db.OpenConnectionAsync();
            Assert.Equal(2, await connection.ExecuteAsync("update transactions set created_at = @at where job_id = @job", new { at, job }));
        }

        var earnings = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/earnings", operatorAccount), HttpStatusCode.OK);

        Assert.Equal(9.5m, earnings.GetProperty("paid").GetDecimal());
        Assert.Equal(1.75m, earnings.GetProperty("minted").GetDecimal());
        var workers = earnings.GetProperty("workers").EnumerateArray().ToDictionary(w => w.GetProperty("workerId").GetString()!);
        Assert.Equal(6.5m, workers[w1].GetProperty("paid").GetDecimal());
        Assert.Equal(1.5m, workers[w1].GetProperty("minted").GetDecimal());
        Assert.Equal(2, workers[w1].GetProperty("jobs").GetInt64());
        Assert.Equal(1, workers[w2].GetProperty("jobs").GetInt64());
        // Newest day first.
        Assert.Equal([("2026-03-02", 3m, 0.25m), ("2026-03-01", 6.5m, 1.5m)], earnings.GetProperty("days").EnumerateArray()
            .Select(d => (d.GetProperty("date").GetString(), d.GetProperty("paid").GetDecimal(), d.GetProperty("minted").GetDecimal())));
    }

    [Fact]
    public async Task Spending_is_what_was_escrowed_less_what_was_refunded_and_the_pinning_fees_per_day()
    {
        var client = await OpenAsync("client", 100m);
        // Dated either side of a UTC midnight, as the earnings test does: a day is the UTC day of the transaction.
        var midnight = new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);
        foreach (var (escrowed, refunded, at) in new[] { (4m, 1.5m, midnight.AddHours(-3)), (2m, 0m, midnight.AddSeconds(-1)), (3m, 3m, midnight.AddSeconds(1)) })
        {
            var job = JobId.New().Value;
            await PostAsync($"escrow:{job}", job, null, new Posting(client, "escrow", -escrowed), new Posting(CreditLedger.Escrow, "escrow", escrowed));
            if (refunded > 0)
                await PostAsync($"refund:{job}", job, null, new Posting(CreditLedger.Escrow, "refund", -refunded), new Posting(client, "refund", refunded));
            await using var connection = await Db.OpenConnectionAsync();
            await connection.ExecuteAsync("update transactions set created_at = @at where job_id = @job", new { at, job });
        }
        // Pinning data costs a fee too (no job); dated on the first day.
        await PostAsync($"pin-fee:{client}", null, null, new Posting(client, "pin-fee", -0.25m), new Posting(CreditLedger.Fees, "pin-fee", 0.25m));
        await using (var connection = await Db.OpenConnectionAsync())
            Assert.Equal(1, await connection.ExecuteAsync("update transactions set created_at = @at where idempotency_key = @key",
                new { at = midnight.AddHours(-5), key = $"pin-fee:{client}" }));

        var spending = await JsonAsync(await SendAsync(HttpMethod.Get, "/v1/account/spending", client), HttpStatusCode.OK);

        Assert.Equal(4.75m, spending.GetProperty("spent").GetDecimal());
        // Newest day first; a job refunded in full cost nothing but was still submitted that day.
        Assert.Equal([("2026-03-02", 0m, 1L), ("2026-03-01", 4.75m, 2L)], spending.GetProperty("days").EnumerateArray()
            .Select(d => (d.GetProperty("date").GetString(), d.GetProperty("spent").GetDecimal(), d.GetProperty("jobs").GetInt64())));
    }
}
