using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Hosting.Database;
using Platform.Hosting.Http;
using Platform.Scheduler.Placement;

namespace Platform.Scheduler.Workers;

/// <summary>
/// The network and its workers over time, for the dashboard's charts: a sample every
/// <see cref="SchedulerOptions.HistoryInterval"/> (<see cref="NetworkSampler"/>), read back by
/// GET /v1/network/history and GET /v1/workers/{id}/history. Samples rather than queries over the jobs: a chart
/// polled by every open dashboard reads a few hundred rows however many jobs the network ran.
/// </summary>
public static class NetworkHistory
{
    /// <summary>The most samples one answer holds: a day of one-minute samples.</summary>
    public const int MaxSamples = 1440;

    public static RouteGroupBuilder MapNetworkHistory(this RouteGroupBuilder group)
    {
        group.MapGet("/network/history", GetNetwork);
        group.MapGet("/workers/{id}/history", GetWorker);
        return group;
    }

    private sealed record NetworkRow(DateTime At, int Queued, int Active, int Slots, int Online, int Completed, double? LatencyP50Ms, double? LatencyP99Ms);

    private sealed record WorkerRow(DateTime At, int Active, int Slots, string Gflops, double? JoulesPerGflop);

    public static async Task<Results<Ok<NetworkHistoryView>, ProblemHttpResult>> GetNetwork(int? minutes, NpgsqlDataSource db, IOptions<SchedulerOptions> options,
        TimeProvider clock, CancellationToken ct)
    {
        var o = options.Value;
        if (Window(minutes, o) is not { } window)
            return BadWindow(o);
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<NetworkRow>(new CommandDefinition(
            """
            select at, queued, active, slots, online, completed, latency_p50_ms as LatencyP50Ms, latency_p99_ms as LatencyP99Ms
            from network_samples where at > @since order by at
            """, new { since = clock.GetUtcNow() - window }, cancellationToken: ct));
        var perMinute = 60 / o.HistoryInterval.TotalSeconds;
        return TypedResults.Ok(new NetworkHistoryView(IntervalSeconds(o), [.. rows.Select(r => new NetworkSample(
            new DateTimeOffset(r.At, TimeSpan.Zero), r.Queued, r.Active, r.Slots, r.Online, r.Completed, r.Completed * perMinute, r.LatencyP50Ms, r.LatencyP99Ms))]));
    }

    public static async Task<Results<Ok<WorkerHistoryView>, ProblemHttpResult>> GetWorker(string id, int? minutes, NpgsqlDataSource db, IOptions<SchedulerOptions> options,
        TimeProvider clock, CancellationToken ct)
    {
        var o = options.Value;
        if (Window(minutes, o) is not { } window)
            return BadWindow(o);
        await using var connection = await db.OpenConnectionAsync(ct);
        if (!await connection.ExecuteScalarAsync<bool>(new CommandDefinition("select exists (select 1 from workers where id = @id)", new { id }, cancellationToken: ct)))
            return Problems.NotFound("worker-not-found", "No such worker", $"No worker '{id}' has registered with the network.");
        // The energy columns are totals so far: the J/GFLOP of an interval is the difference between two samples.
        // The sample just before the window is read too, so the first one shown has its interval's figure.
        var rows = await connection.QueryAsync<WorkerRow>(new CommandDefinition(
            """
            select at, active, slots, gflops::text as Gflops, JoulesPerGflop from (
                select at, active, slots, gflops,
                       case when gflop - lag(gflop) over w > 0 then (joules - lag(joules) over w) / (gflop - lag(gflop) over w) end as JoulesPerGflop
                from worker_samples where worker_id = @id and at > @since - @interval * 2
                window w as (order by at)
            ) s where at > @since order by at
            """, new { id, since = clock.GetUtcNow() - window, interval = o.HistoryInterval }, cancellationToken: ct));
        return TypedResults.Ok(new WorkerHistoryView(id, IntervalSeconds(o), [.. rows.Select(r => new WorkerSample(
            new DateTimeOffset(r.At, TimeSpan.Zero), r.Active, r.Slots,
            JsonSerializer.Deserialize<Dictionary<string, double>>(r.Gflops, PlatformJson.Options)!, r.JoulesPerGflop))]));
    }

    private static int IntervalSeconds(SchedulerOptions o) => (int)Math.Round(o.HistoryInterval.TotalSeconds);

    // An hour unless asked (less when an hour holds more than MaxSamples samples); at most what is kept, and at
    // most MaxSamples samples.
    private static TimeSpan? Window(int? minutes, SchedulerOptions o)
    {
        if (minutes is null)
            return TimeSpan.FromTicks(Math.Min(TimeSpan.FromHours(1).Ticks, Longest(o).Ticks));
        var window = TimeSpan.FromMinutes(minutes.Value);
        return window > TimeSpan.Zero && window <= Longest(o) ? window : null;
    }

    private static TimeSpan Longest(SchedulerOptions o) => TimeSpan.FromTicks(Math.Min(o.HistoryRetention.Ticks, o.HistoryInterval.Ticks * MaxSamples));

    private static ProblemHttpResult BadWindow(SchedulerOptions o) => Problems.BadRequest("bad-history-window", "Bad history window",
        $"minutes must be between 1 and {(int)Longest(o).TotalMinutes}: samples are taken every {JobReasons.Duration(o.HistoryInterval)} and kept for {JobReasons.Duration(o.HistoryRetention)}");
}

/// <summary>
/// Takes a sample of the network and of each online worker at the end of every <see cref="SchedulerOptions.HistoryInterval"/>
/// (on the clock's boundaries, so scheduler instances agree on the instants and the first to write one wins) and
/// forgets samples older than <see cref="SchedulerOptions.HistoryRetention"/>.
/// </summary>
public sealed class NetworkSampler(NpgsqlDataSource db, IOptions<SchedulerOptions> options, DatabaseState database, TimeProvider clock,
    ILogger<NetworkSampler> logger) : BackgroundService
{
    /// <summary>
    /// How long after an interval's end its sample is taken. A completion is stamped (<c>finished_at</c>) when its
    /// transaction starts and is visible only once it commits, which for a replicated job includes comparing the
    /// outputs: a sample taken right at the boundary would miss the completions still committing, and no later sample
    /// counts them. At most the interval itself, so samples never fall behind.
    /// </summary>
    public static TimeSpan Grace(TimeSpan interval) => TimeSpan.FromTicks(Math.Min(interval.Ticks, TimeSpan.FromSeconds(5).Ticks));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.HistoryInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            // The next boundary of the interval names the sample, which covers exactly that interval; it is taken a
            // grace period later.
            var now = clock.GetUtcNow();
            var next = Boundary(now - Grace(interval), interval) + interval;
            await Task.Delay(next + Grace(interval) - now, clock, stoppingToken);
            try
            {
                if (database.Migrated)
                    await SampleAsync(next, stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Sampling the network for its history failed; the interval ending {At} has no sample", next);
            }
        }
    }

    public static DateTimeOffset Boundary(DateTimeOffset at, TimeSpan interval) => new(at.UtcTicks - (at.UtcTicks % interval.Ticks), TimeSpan.Zero);

    /// <summary>Writes the samples of the interval ending at <paramref name="at"/>, unless another instance already did.</summary>
    public async Task SampleAsync(DateTimeOffset at, CancellationToken ct)
    {
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var written = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into network_samples (at, queued, active, slots, online, completed, latency_p50_ms, latency_p99_ms)
            select @at, (select count(*) from jobs where status = 'queued'), (select count(*) from jobs where status in ('assigned', 'running')),
                   (select coalesce(sum(slots), 0) from workers where online), (select count(*) from workers where online),
                   c.completed, c.p50, c.p99
            from (select count(*)::int as completed,
                         percentile_cont(0.5) within group (order by extract(epoch from finished_at - created_at) * 1000) as p50,
                         percentile_cont(0.99) within group (order by extract(epoch from finished_at - created_at) * 1000) as p99
                  from jobs where status = 'completed' and finished_at > @since and finished_at <= @at) c
            on conflict (at) do nothing
            """, new { at, since = at - o.HistoryInterval }, tx, cancellationToken: ct));
        if (written == 0)
            return;
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into worker_samples (worker_id, at, active, slots, gflops, joules, gflop)
            select w.id, @at, (select count(*) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running')), w.slots,
                   coalesce((select jsonb_object_agg(sp.kernel, (select percentile_cont(0.5) within group (order by r) from unnest(sp.rates) r))
                             from worker_speed sp where sp.worker_id = w.id and cardinality(sp.rates) >= @ClaimSamples), '{}'::jsonb),
                   coalesce(e.joules, 0), coalesce(e.gflop, 0)
            from workers w left join (select worker_id, sum(joules) as joules, sum(gflop) as gflop from worker_energy group by worker_id) e on e.worker_id = w.id
            where w.online
            on conflict do nothing
            """, new { at, o.ClaimSamples }, tx, cancellationToken: ct));
        var cutoff = at - o.HistoryRetention;
        await connection.ExecuteAsync(new CommandDefinition(
            "delete from network_samples where at < @cutoff; delete from worker_samples where at < @cutoff", new { cutoff }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }
}
