using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Workers;

/// <summary>The public view of the network: who is there, how busy, what it has done.</summary>
public static class NetworkApi
{
    public static RouteGroupBuilder MapNetwork(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("Network");
        group.MapGet("/workers", ListWorkers);
        group.MapGet("/network", Network);
        group.MapGet("/workers/{id}/placement", WorkerPlacement.Get);
        group.MapNetworkHistory();
        return group;
    }

    // Properties, not a positional record: Dapper matches constructors by exact column types, and Npgsql
    // reports text[] as Array.
    private sealed class WorkerRow
    {
        public string Id { get; init; } = "";
        public string OperatorAccountId { get; init; } = "";
        public string Region { get; init; } = "";
        public bool Online { get; init; }
        public int Slots { get; init; }
        public string[] Kernels { get; init; } = [];
        public string Devices { get; init; } = "[]";
        public string Gflops { get; init; } = "{}";
        public double PowerWatts { get; init; }
        public string Backends { get; init; } = "{}";
        public string BackendRates { get; init; } = "{}";
        public bool PowerMeasured { get; init; }
        public string[] Notes { get; init; } = [];
        public double Reputation { get; init; }
        public decimal OperatorStake { get; init; }
        public string? PublicKey { get; init; }
        public DateTime LastSeenAt { get; init; }
        public int Active { get; init; }
        public long EnergyAttempts { get; init; }
        public long EnergyMeasured { get; init; }
        public double Joules { get; init; }
        public double Gflop { get; init; }
        public string? MeasuredGflops { get; init; }
        public int? KernelRevision { get; init; }
    }

    public static async Task<Ok<List<WorkerView>>> ListWorkers(NpgsqlDataSource db, IOptions<SchedulerOptions> options, CancellationToken ct)
    {
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<WorkerRow>(new CommandDefinition(
            """
            select w.id, w.operator_account_id as OperatorAccountId, w.region, w.online, w.slots, w.kernels, w.devices::text as Devices, w.gflops::text as Gflops, w.power_watts as PowerWatts,
                   w.backends::text as Backends, w.backend_rates::text as BackendRates, w.power_measured as PowerMeasured, w.notes, w.reputation, w.last_seen_at as LastSeenAt,
                   coalesce(s.staked, 0) as OperatorStake, w.public_key as PublicKey, w.kernel_revision as KernelRevision,
                   (select count(*) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running'))::int as Active,
                   coalesce(e.attempts, 0) as EnergyAttempts, coalesce(e.measured, 0) as EnergyMeasured, coalesce(e.joules, 0) as Joules, coalesce(e.gflop, 0) as Gflop,
                   (select jsonb_object_agg(sp.kernel, sp.rates)::text from worker_speed sp
                    where sp.worker_id = w.id and cardinality(sp.rates) >= @ClaimSamples) as MeasuredGflops
            from workers w left join operator_stakes s on s.operator_account_id = w.operator_account_id
                           left join (select worker_id, sum(attempts)::bigint as attempts, sum(measured_attempts)::bigint as measured, sum(joules) as joules, sum(gflop) as gflop
                                      from worker_energy group by worker_id) e on e.worker_id = w.id
            order by w.online desc, w.region, w.id
            """, new { o.ClaimSamples }, cancellationToken: ct));
        return TypedResults.Ok(rows.Select(r => View(r, o)).ToList());
    }

    private static WorkerView View(WorkerRow r, SchedulerOptions o)
    {
        var claimed = JsonSerializer.Deserialize<Dictionary<string, double>>(r.Gflops, PlatformJson.Options)!;
        var measured = WorkerClaims.Measured(r.MeasuredGflops);
        return new WorkerView(r.Id, r.OperatorAccountId, r.Region, r.Online, r.Slots, r.Active, r.Kernels,
            JsonSerializer.Deserialize<List<DeviceInfo>>(r.Devices, PlatformJson.Options)!,
            claimed,
            JsonSerializer.Deserialize<Dictionary<string, string>>(r.Backends, PlatformJson.Options)!,
            r.PowerWatts, r.PowerMeasured, r.Notes, r.Reputation, r.OperatorStake, r.PublicKey, new DateTimeOffset(r.LastSeenAt, TimeSpan.Zero),
            EnergyView.Of(r.EnergyAttempts, r.EnergyAttempts, r.EnergyMeasured, r.Joules, r.Gflop))
        {
            MeasuredGflopsPerKernel = measured.ToDictionary(m => m.Key, m => WorkerClaims.Median(m.Value)),
            EffectiveGflopsPerKernel = claimed.ToDictionary(c => c.Key, c => WorkerClaims.EffectiveRate(c.Value, measured.GetValueOrDefault(c.Key), o)),
            EffectiveSlots = Math.Min(r.Slots, o.MaxSlots),
            KernelRevision = r.KernelRevision,
            GflopsPerBackend = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, double>>>(r.BackendRates, PlatformJson.Options)!
                .ToDictionary(b => b.Key, b => (IReadOnlyDictionary<string, double>)b.Value),
        };
    }

    private sealed record RecentTotals(int Jobs, int ExtraAttempts, int SpotChecked, int Mismatches, long EnergyAttempts, long Measured, double Joules, double Gflop);

    private sealed record Totals(int Online, int Offline, int Slots, int Active, int Queued, int PerMinute, decimal CreditsMinted, long BytesPinned, long BlobsPinned);

    internal static async Task<Ok<NetworkView>> Network(NpgsqlDataSource db, IOptions<SchedulerOptions> options, DeadLetterCount deadLetters, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        var t = await connection.QuerySingleAsync<Totals>(new CommandDefinition(
            """
            select (select count(*) from workers where online)::int as Online,
                   (select count(*) from workers where not online)::int as Offline,
                   (select coalesce(sum(slots), 0) from workers where online)::int as Slots,
                   (select count(*) from jobs where status in ('assigned', 'running'))::int as Active,
                   (select count(*) from jobs where status = 'queued')::int as Queued,
                   (select count(*) from jobs where status = 'completed' and finished_at > @minuteAgo)::int as PerMinute,
                   (select value from network_totals where name = 'credits_minted') as CreditsMinted,
                   (select value from network_totals where name = 'bytes_pinned')::bigint as BytesPinned,
                   (select value from network_totals where name = 'blobs_pinned')::bigint as BlobsPinned
            """, new { minuteAgo = now.AddMinutes(-1) }, cancellationToken: ct));
        var regions = (await connection.QueryAsync<(string, int)>(new CommandDefinition(
            "select region, count(*)::int from workers where online group by region order by region", cancellationToken: ct))).ToDictionary(r => r.Item1, r => r.Item2);
        var devices = (await connection.QueryAsync<(string, int)>(new CommandDefinition(
            "select d, count(*)::int from workers, unnest(device_kinds) d where online group by d order by d", cancellationToken: ct))).ToDictionary(r => r.Item1, r => r.Item2);
        // Verification and energy of the last 1,000 completed jobs, one window read through jobs_completed: a view
        // polled by every dashboard costs the same on a network with millions of jobs as on a new one.
        var r = await connection.QuerySingleAsync<RecentTotals>(new CommandDefinition(
            """
            with recent as (
                select id, spot_check, case when spot_check then 1 else results_needed end as requested, estimated_gflop
                from jobs where status = 'completed' order by finished_at desc limit 1000
            ), results as (
                select a.status, a.metrics, a.checked_joules, recent.estimated_gflop from attempts a join recent on recent.id = a.job_id
                where a.status in ('accepted', 'rejected', 'unverified')
            ), energy as (
                -- Checked joules only, per the job's GFLOP as the network estimated it (see Verification/EnergyClaims.cs).
                select checked_joules as joules, coalesce(estimated_gflop, 0) as gflop,
                       coalesce((metrics->>'joulesEstimated')::boolean, true) as estimated
                from results where status = 'accepted' and checked_joules is not null
            )
            select (select count(*) from recent)::int as Jobs,
                   ((select count(*) from results) - (select coalesce(sum(requested), 0) from recent))::int as ExtraAttempts,
                   (select count(*) from recent where spot_check)::int as SpotChecked,
                   (select count(*) from results where status = 'rejected')::int as Mismatches,
                   (select count(*) from energy) as EnergyAttempts, (select count(*) from energy where not estimated) as Measured,
                   (select coalesce(sum(joules), 0) from energy) as Joules, (select coalesce(sum(gflop), 0) from energy) as Gflop
            """, cancellationToken: ct));
        var rejected = await RejectedNodeMessages.ReadAsync(connection, ct);
        return TypedResults.Ok(new NetworkView(t.Online, t.Offline, regions, devices, t.Slots, t.Active, t.Slots == 0 ? 0 : (double)t.Active / t.Slots,
            t.Queued, t.PerMinute, t.CreditsMinted, t.BytesPinned, t.BlobsPinned,
            new VerificationView(r.Jobs, r.ExtraAttempts, r.Jobs == 0 ? 0 : (double)r.ExtraAttempts / r.Jobs, r.SpotChecked, r.Mismatches),
            EnergyView.Of(r.Jobs, r.EnergyAttempts, r.Measured, r.Joules, r.Gflop))
        { RejectedNodeMessages = rejected, DeadLetters = await deadLetters.GetAsync(ct) });
    }
}
