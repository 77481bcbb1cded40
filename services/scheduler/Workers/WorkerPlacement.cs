using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;

namespace Platform.Scheduler.Workers;

/// <summary>
/// GET /v1/workers/{id}/placement: why a worker gets work or does not, from the placement log the dispatcher
/// writes (<see cref="PlacementLog"/>) and the worker's standing now. Public like the rest of the network view:
/// it names kernels and workers, never jobs or clients.
/// </summary>
public static class WorkerPlacement
{
    private sealed class Row
    {
        public string Id { get; init; } = "";
        public bool Online { get; init; }
        public bool Alive { get; init; }
        public decimal Stake { get; init; }
        public double Reputation { get; init; }
        public int Slots { get; init; }
        public int Active { get; init; }
        public string? Decisions { get; init; }
    }

    private sealed class TrustRow
    {
        public string Kernel { get; init; } = "";
        public int Streak { get; init; }
        public long Accepted { get; init; }
        public long Checked { get; init; }
        public long Mismatches { get; init; }
    }

    public static async Task<Results<Ok<WorkerPlacementView>, ProblemHttpResult>> Get(string id, NpgsqlDataSource db, IOptions<SchedulerOptions> options,
        TimeProvider clock, CancellationToken ct)
    {
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            """
            select w.id, w.online, w.last_seen_at > @aliveSince as Alive, coalesce(s.staked, 0) as Stake, w.reputation, w.slots,
                   (select count(*) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running'))::int as Active,
                   p.decisions::text as Decisions
            from workers w left join operator_stakes s on s.operator_account_id = w.operator_account_id
                           left join worker_placement p on p.worker_id = w.id
            where w.id = @id
            """, new { id, aliveSince = clock.GetUtcNow() - 3 * o.HeartbeatInterval }, cancellationToken: ct));
        if (row is null)
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such worker", detail: $"No worker '{id}' has registered with the network.");

        var decisions = JsonSerializer.Deserialize<List<PlacementRecord>>(row.Decisions ?? "[]", PlatformJson.Options)!;
        var recent = decisions.OrderByDescending(d => d.At)
            .Select(d => new PlacementDecisionView(d.At, d.Kernel, d.Code, d.Message, d.Fix, d.ChosenWorkerId)).ToList();
        var reasons = recent.GroupBy(d => d.Code)
            .Select(g => new PlacementReasonCount(g.Key, g.Count(), g.First().Message, g.First().Fix))
            .OrderByDescending(r => r.Count).ThenBy(r => r.Code, StringComparer.Ordinal).ToList();
        var trust = (await connection.QueryAsync<TrustRow>(new CommandDefinition(
            "select kernel, streak, accepted, checked, mismatches from worker_trust where worker_id = @id order by kernel", new { id }, cancellationToken: ct)))
            .Select(t => new KernelTrustView(t.Kernel, t.Streak, SpotChecks.Probability(t.Streak, o), t.Accepted, t.Checked, t.Mismatches)).ToList();
        var (getsWork, status) = Standing(row, recent, o);
        return TypedResults.Ok(new WorkerPlacementView(row.Id, row.Online, getsWork, status, reasons, recent, trust));
    }

    // The headline: what stops the worker from getting any work now, else how it fared lately.
    private static (bool, string) Standing(Row w, List<PlacementDecisionView> recent, SchedulerOptions o)
    {
        if (!w.Online)
            return (false, "Offline: it stopped sending heartbeats. Start the node again and it rejoins.");
        switch (PlacementReasons.Ineligibility(w.Alive, w.Stake, w.Reputation, o))
        {
            case PlacementReason.HeartbeatsMissed:
                return (false, "It has missed its last heartbeats, so it gets no new work until they resume.");
            case PlacementReason.StakeTooLow:
                return (false, string.Create(CultureInfo.InvariantCulture, $"Gets no work: its operator has staked {w.Stake:0.######} of the {o.MinimumStake:0.######} credits workers need."));
            case PlacementReason.ReputationTooLow:
                return (false, string.Create(CultureInfo.InvariantCulture, $"Gets no work: its reputation {w.Reputation:0.00} is below {o.MinimumReputation:0.00}."));
        }
        if (recent.Count == 0)
            return (true, "Gets work, but no job has been placed since it came online: the queue has been empty.");
        var chosen = recent.Count(d => d.Code == "chosen");
        var top = recent.Where(d => d.Code != "chosen").GroupBy(d => d.Code).MaxBy(g => g.Count());
        // Tiny jobs share slots (Scheduler:TinyJobsPerSlot), so a worker may hold more attempts than it has slots.
        var busy = w.Active > 0 ? $" It holds {w.Active} attempt(s) on its {w.Slots} slots now." : "";
        return (true, top is null
            ? $"Gets work: chosen for all of its last {recent.Count} placements.{busy}"
            : $"Gets work: chosen for {chosen} of its last {recent.Count} placements; passed over most often because: {top.First().Message}{busy}");
    }
}
