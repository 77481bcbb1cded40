using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Platform.Scheduler.Jobs;

namespace Platform.Scheduler.Placement;

/// <summary>
/// Matches queued jobs to online workers with a free slot and sends each an AssignJob. Jobs and workers are
/// claimed with FOR UPDATE SKIP LOCKED, so several scheduler instances never assign a job twice or overfill a
/// worker. Runs when poked (a job was queued, a worker came online or freed a slot) and on a timer.
/// </summary>
public sealed class Dispatcher(NpgsqlDataSource db, MessageOutbox outbox, IOptions<SchedulerOptions> options, DatabaseState database, TimeProvider clock, ILogger<Dispatcher> logger)
    : BackgroundService
{
    private const int BatchSize = 100;
    private readonly SemaphoreSlim _poked = new(0, 1);

    public void Poke()
    {
        try
        {
            _poked.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var assigned = database.Migrated ? await DispatchBatchAsync(stoppingToken) : 0;
                if (assigned < BatchSize)
                    await _poked.WaitAsync(options.Value.DispatchInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Dispatch failed; retrying");
                await Task.Delay(options.Value.DispatchInterval, stoppingToken);
            }
        }
    }

    private sealed record QueuedJob(string Id, string Kernel, string Spec);

    private const string ClaimQueued = """
        select id, kernel, spec::text as Spec from jobs
        where status = 'queued' order by queued_at, id limit @BatchSize
        for update skip locked
        """;

    // Least-loaded online worker that runs the kernel and has a free slot; locking it keeps two dispatchers
    // from both filling its last slot.
    private const string ClaimWorker = """
        select w.id from workers w
        where w.online and w.last_seen_at > @aliveSince and @kernel = any(w.kernels)
          and (select count(*) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running')) < w.slots
        order by (select count(*) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running'))::float / w.slots, w.id
        limit 1
        for update of w skip locked
        """;

    private const string Assign = """
        update jobs set status = 'assigned', worker_id = @workerId, attempt_id = @attemptId,
                        lease_deadline = @leaseDeadline, attempt_count = attempt_count + 1
        where id = @jobId
        """;

    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var aliveSince = now - 3 * options.Value.HeartbeatInterval;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var queued = (await connection.QueryAsync<QueuedJob>(new CommandDefinition(ClaimQueued, new { BatchSize }, tx, cancellationToken: ct))).ToList();
        var assigned = 0;
        foreach (var job in queued)
        {
            var workerId = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
                ClaimWorker, new { aliveSince, kernel = job.Kernel }, tx, cancellationToken: ct));
            if (workerId is null)
                continue;
            var attemptId = AttemptId.New();
            var leaseDeadline = now + options.Value.LeaseDuration;
            await connection.ExecuteAsync(new CommandDefinition(Assign,
                new { workerId, attemptId = attemptId.Value, leaseDeadline, jobId = job.Id }, tx, cancellationToken: ct));
            await connection.ExecuteAsync(new CommandDefinition(
                "insert into attempts (id, job_id, worker_id, status) values (@attemptId, @jobId, @workerId, 'assigned')",
                new { attemptId = attemptId.Value, jobId = job.Id, workerId }, tx, cancellationToken: ct));

            var jobId = JobId.From(job.Id);
            var worker = WorkerId.From(workerId);
            await outbox.EnqueueAsync(tx, new AssignJob
            {
                JobId = jobId,
                AttemptId = attemptId,
                WorkerId = worker,
                Spec = JsonSerializer.Deserialize<JobSpec>(job.Spec, JobStore.Json)!,
                LeaseDeadline = leaseDeadline,
                OccurredAt = now,
            }, sendTo: $"worker-{workerId}", ct: ct);
            await outbox.EnqueueAsync(tx, new JobStatusChanged
            {
                JobId = jobId,
                Status = "assigned",
                WorkerId = worker,
                AttemptId = attemptId,
                OccurredAt = now,
            }, ct: ct);
            assigned++;
        }
        await outbox.CommitAsync(tx, ct);
        return assigned;
    }
}
