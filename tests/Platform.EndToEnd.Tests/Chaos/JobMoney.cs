using System.Globalization;
using Dapper;
using Npgsql;

namespace Platform.EndToEnd.Tests.Chaos;

/// <summary>
/// Each job's money, exactly, read from the rewards ledger (services/rewards/Migrations: transactions keyed
/// escrow:job, settle:job, refund:job, mint:job:attempt; postings per account; the escrows row) against what
/// the job became. A completed job: escrowed once, settled once (the escrow released in full, the client refunded
/// what it did not cost, one payout per paid accepted attempt to that attempt's operator and worker, the fee and
/// the output fee the rest), minted at most once per accepted attempt (not at all when its mint is zero), nothing refunded besides. A failed or cancelled job: its escrow, if
/// any, refunded once in full, nothing settled, paid or minted. A rejected job: nothing at all. For every job the
/// escrow account's postings net to zero. The ledger writes no posting of zero (a full-cost job's refund, a zero
/// mint); a refund of zero still writes its transaction and key, a mint of zero writes nothing.
/// </summary>
public static class JobMoney
{
    private sealed record Line(string JobId, string Key, string AccountId, string Kind, decimal Amount, string? WorkerId);

    private sealed record EscrowRow(string JobId, string ClientAccountId, decimal Amount, string Status, decimal? Cost);

    private sealed record AcceptedAttempt(string JobId, string AttemptId, string WorkerId, string? OperatorAccountId);

    private sealed record SchedulerJob(string Id, int ResultsNeeded, bool SpotCheck);

    private const string Escrow = "sys:escrow";
    private const string Fees = "sys:fees";

    /// <summary>One line per job whose money is not exactly what its status says; empty when all are.</summary>
    public static async Task<IReadOnlyList<string>> CheckAsync(
        NpgsqlConnection rewards, NpgsqlConnection scheduler, IReadOnlyList<(string Id, string Status, decimal? Cost)> jobs)
    {
        var ids = jobs.Select(j => j.Id).ToArray();
        var lines = (await rewards.QueryAsync<Line>(
            """
            select t.job_id as JobId, t.idempotency_key as Key, p.account_id as AccountId, p.kind, p.amount, p.worker_id as WorkerId
            from transactions t join postings p on p.transaction_id = t.id where t.job_id = any(@ids)
            """, new { ids })).ToLookup(l => l.JobId);
        var keys = (await rewards.QueryAsync<(string JobId, string Key)>(
            "select job_id, idempotency_key from transactions where job_id = any(@ids)", new { ids })).ToLookup(k => k.JobId, k => k.Key);
        var escrows = (await rewards.QueryAsync<EscrowRow>(
            "select job_id as JobId, client_account_id as ClientAccountId, amount, status, cost from escrows where job_id = any(@ids)", new { ids }))
            .ToDictionary(e => e.JobId);
        var accepted = (await scheduler.QueryAsync<AcceptedAttempt>(
            "select job_id as JobId, id as AttemptId, worker_id as WorkerId, operator_account_id as OperatorAccountId from attempts where status = 'accepted' and job_id = any(@ids)",
            new { ids })).ToLookup(a => a.JobId);
        var schedulerJobs = (await scheduler.QueryAsync<SchedulerJob>(
            "select id, results_needed as ResultsNeeded, spot_check as SpotCheck from jobs where id = any(@ids)", new { ids })).ToDictionary(j => j.Id);

        var problems = new List<string>();
        foreach (var (id, status, cost) in jobs)
        {
            var found = new List<string>();
            var job = lines[id].ToList();
            var byKey = job.ToLookup(l => l.Key);
            escrows.TryGetValue(id, out var escrow);
            var escrowKey = $"escrow:{id}";
            var settleKey = $"settle:{id}";
            var refundKey = $"refund:{id}";
            var jobKeys = keys[id].ToList();
            var mintKeys = jobKeys.Where(k => k.StartsWith($"mint:{id}:", StringComparison.Ordinal)).ToList();
            var otherKeys = jobKeys.Where(k => k != escrowKey && k != settleKey && k != refundKey && !mintKeys.Contains(k)).ToList();
            if (otherKeys.Count > 0)
                found.Add($"unexpected transactions {string.Join(", ", otherKeys)}");
            var escrowNet = job.Where(l => l.AccountId == Escrow).Sum(l => l.Amount);
            if (escrowNet != 0)
                found.Add($"escrow holds {escrowNet}");

            switch (status)
            {
                case "rejected":
                    if (jobKeys.Count > 0)
                        found.Add($"a rejected job has ledger transactions ({string.Join(", ", jobKeys)})");
                    if (escrow is not null && escrow.Status != "rejected")
                        found.Add($"escrow row {escrow.Status}");
                    break;

                case "completed":
                    if (escrow is null)
                    {
                        found.Add("no escrow row");
                        break;
                    }
                    if (escrow.Status != "settled")
                        found.Add($"escrow row {escrow.Status}, not settled");
                    if (jobKeys.Contains(refundKey))
                        found.Add("a completed job was refunded as if it failed");
                    if (!jobKeys.Contains(settleKey))
                        found.Add("never settled");
                    CheckEscrowed(byKey[escrowKey].ToList(), escrow, found);
                    var jobAccepted = accepted[id].ToList();
                    var paid = schedulerJobs.TryGetValue(id, out var s) ? (s.SpotCheck ? 1 : s.ResultsNeeded) : 1;
                    CheckSettled(byKey[settleKey].ToList(), escrow, cost, jobAccepted, paid, found);
                    // A mint is written only when it is not zero (a tiny job's rounds to nothing): at most one per
                    // accepted attempt, none for any other attempt, and never an empty transaction.
                    var minted = mintKeys.Select(k => k[$"mint:{id}:".Length..]).Order(StringComparer.Ordinal).ToList();
                    var acceptedIds = jobAccepted.Select(a => a.AttemptId).ToHashSet();
                    if (minted.Distinct().Count() != minted.Count || minted.Any(a => !acceptedIds.Contains(a)))
                        found.Add($"minted for attempts [{string.Join(", ", minted)}], accepted [{string.Join(", ", acceptedIds.Order(StringComparer.Ordinal))}]");
                    foreach (var key in mintKeys.Where(k => !byKey[k].Any(l => l.Amount != 0)))
                        found.Add($"{key} is a mint transaction that moves nothing");
                    var clientNet = job.Where(l => l.AccountId == escrow.ClientAccountId).Sum(l => l.Amount);
                    if (clientNet != -(escrow.Cost ?? 0))
                        found.Add($"the client's net is {clientNet}, the job cost {escrow.Cost}");
                    break;

                case "failed" or "cancelled":
                    if (escrow is null)
                    {
                        found.Add("no escrow row");
                        break;
                    }
                    if (escrow.Status != "refunded")
                        found.Add($"escrow row {escrow.Status}, not refunded");
                    if (jobKeys.Contains(settleKey) || mintKeys.Count > 0 || job.Any(l => l.Kind == "payout"))
                        found.Add("a job that did not complete was settled, paid or minted");
                    if (jobKeys.Contains(escrowKey))
                    {
                        CheckEscrowed(byKey[escrowKey].ToList(), escrow, found);
                        var refund = byKey[refundKey].ToList();
                        if (refund.Count != 2
                            || refund.Count(l => l.AccountId == Escrow && l.Amount == -escrow.Amount) != 1
                            || refund.Count(l => l.AccountId == escrow.ClientAccountId && l.Amount == escrow.Amount) != 1)
                            found.Add($"refund is not the whole escrow {escrow.Amount} back to the client once: {Describe(refund)}");
                    }
                    else if (jobKeys.Contains(refundKey) || escrow.Amount != 0)
                        found.Add("refunded an escrow that was never taken");
                    break;

                default:
                    found.Add($"status {status}");
                    break;
            }
            if (found.Count > 0)
                problems.Add($"{id} ({status}): {string.Join("; ", found)}");
        }
        return problems;
    }

    private static void CheckEscrowed(List<Line> escrowed, EscrowRow escrow, List<string> found)
    {
        if (escrowed.Count != 2
            || escrowed.Count(l => l.AccountId == escrow.ClientAccountId && l.Amount == -escrow.Amount) != 1
            || escrowed.Count(l => l.AccountId == Escrow && l.Amount == escrow.Amount) != 1
            || escrow.Amount <= 0)
            found.Add($"escrow transaction is not {escrow.Amount} from the client once: {Describe(escrowed)}");
    }

    private static void CheckSettled(List<Line> settle, EscrowRow escrow, decimal? gatewayCost, List<AcceptedAttempt> accepted, int paid, List<string> found)
    {
        if (settle.Count == 0)
            return;
        var cost = escrow.Cost ?? -1;
        if (gatewayCost != cost)
            found.Add($"the gateway shows cost {gatewayCost}, the ledger {cost}");
        if (settle.Count(l => l.AccountId == Escrow) != 1 || settle.Single(l => l.AccountId == Escrow).Amount != -escrow.Amount)
            found.Add($"settlement does not release the whole escrow {escrow.Amount} once: {Describe(settle)}");
        var refunds = settle.Where(l => l.Kind == "refund").ToList();
        var refundDue = escrow.Amount - cost;
        if (refunds.Count != (refundDue == 0 ? 0 : 1) || refunds.Any(r => r.AccountId != escrow.ClientAccountId || r.Amount != refundDue))
            found.Add($"settlement does not refund the client {refundDue} once: {Describe(settle)}");
        var payouts = settle.Where(l => l.Kind == "payout").ToList();
        if (payouts.Count != paid)
            found.Add($"{payouts.Count} payouts for {paid} paid attempts");
        foreach (var payout in payouts)
        {
            if (!accepted.Any(a => a.WorkerId == payout.WorkerId && a.OperatorAccountId == payout.AccountId))
                found.Add($"payout to {payout.AccountId} for worker {payout.WorkerId}, no accepted attempt of theirs");
        }
        if (payouts.Select(p => p.Amount).Distinct().Count() > 1 || payouts.Any(p => p.Amount <= 0))
            found.Add($"payouts are not equal positive shares: {Describe(payouts)}");
        // The network's fee on the work and the output's fee for keeping it (none for a tiny output) go to the fees
        // account, at most one posting of each, together the cost less the payouts.
        var fee = settle.Where(l => l.Kind is "fee" or "output-fee").ToList();
        var feeDue = cost - payouts.Sum(p => p.Amount);
        if (feeDue < 0 || fee.Sum(f => f.Amount) != feeDue || fee.Any(f => f.AccountId != Fees || f.Amount <= 0) || fee.CountBy(f => f.Kind).Any(k => k.Value > 1))
            found.Add($"fee is not the cost {cost} less the payouts: {Describe(settle)}");
        if (settle.Count != 1 + refunds.Count + payouts.Count + fee.Count)
            found.Add($"settlement has other postings: {Describe(settle)}");
    }

    private static string Describe(IEnumerable<Line> lines) =>
        "[" + string.Join(", ", lines.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.AccountId} {l.Kind} {l.Amount}"))) + "]";

    /// <summary>Accounts whose kept balance is not the sum of their postings (system accounts keep none).</summary>
    public static async Task<IReadOnlyList<string>> BalancesOffTheirPostingsAsync(NpgsqlConnection rewards) =>
        (await rewards.QueryAsync<string>(
            """
            select a.id || ': balance ' || a.balance || ', postings ' || coalesce(p.total, 0)
            from accounts a left join (select account_id, sum(amount) as total from postings group by account_id) p on p.account_id = a.id
            where a.id not like 'sys:%' and a.balance <> coalesce(p.total, 0)
            """)).ToList();
}
