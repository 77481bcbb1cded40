using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Database;
using Platform.Hosting.Outbox;
using Platform.Hosting.Tracing;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Metrics;
using Platform.Scheduler.Nodes;

namespace Platform.Scheduler.Placement;

/// <summary>
/// Matches queued jobs to workers and sends each an AssignJob. Jobs are taken from the <see cref="ReadyQueue"/> in
/// fair-share order (a client's n-th waiting job ranks behind every other client's first) and each goes to the worker
/// its policy scores best. A pass is a batch whatever its size: the jobs it chose are claimed by id with FOR UPDATE SKIP
/// LOCKED (still queued), every worker with a free
/// slot with a transaction-scoped advisory lock that only dispatch takes (never their rows, which heartbeats keep
/// updating) and its busy slots counted again under that claim; placement then runs in memory, and the pass's
/// assignments are written in one round trip of three set-based statements (jobs, outbox, attempts). Several scheduler
/// instances therefore never assign a job twice or overfill a worker. Runs when poked (a job was queued, a worker came
/// online or freed a slot) and on a timer.
/// </summary>
public sealed class Dispatcher(NpgsqlDataSource db, MessageOutbox outbox, PlacementLog placementLog, FairShareCounters fairShare, ReadyQueue ready,
    IOptions<SchedulerOptions> options, DatabaseState database, TimeProvider clock, ILogger<Dispatcher> logger)
    : BackgroundService
{
    // Jobs looked at per pass, at most; jobs no worker can take stay queued, and a larger window keeps them from
    // blocking jobs behind them.
    private const int BatchSize = 500;
    // A pass first chooses a window sized by the free slots it holds (each chosen job is a locked row and its spec),
    // and widens to BatchSize only when that window was full and left slots free.
    private const int WindowPerFreeSlot = 4;
    private const int MinWindow = 8;

    // The units of a slot (Scheduler:TinyJobsPerSlot): a job takes them all, a tiny job one (WorkerState).
    private int UnitsPerSlot => options.Value.TinyJobsPerSlot;

    private bool IsTiny(QueuedJob job) =>
        UnitsPerSlot > 1 && job.EstimatedGflop <= options.Value.TinyJobGflop && job.InputBytes <= options.Value.TinyJobInputBytes;
    private const double UnmeasuredGflops = 0.1;
    private readonly SemaphoreSlim _poked = new(0, 1);

    /// <summary>Jobs this scheduler has just queued (their transaction committed): in the ready queue, and a pass woken.</summary>
    public void Queued(IReadOnlyCollection<ReadyQueue.Entry> jobs)
    {
        if (jobs.Count == 0)
            return;
        ready.Add(jobs);
        Poke();
    }

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

    private sealed class QueuedJob
    {
        public string Id { get; init; } = "";
        public string ClientAccountId { get; init; } = "";
        public string Kernel { get; init; } = "";
        public string Spec { get; init; } = "";
        public double EstimatedGflop { get; init; }
        public long InputBytes { get; init; }
        public string Device { get; init; } = "any";
        public long MinMemoryMb { get; init; }
        public string? Region { get; init; }
        public string? Policy { get; init; }
        public string[]? FailedOn { get; init; }
        /// <summary>Operators whose workers already returned a result: a replica must come from someone else.</summary>
        public string[]? ResultOperators { get; init; }
        /// <summary>Operators whose workers failed the job on its inputs: it needs another operator's word before it fails.</summary>
        public string[]? InputClaimOperators { get; init; }
        public int AttemptCount { get; init; }
        public bool SpotCheck { get; init; }
        public string? TraceParent { get; init; }
        // Read with the job claimed for update: the assignment's change is numbered this plus one (AssignAsync).
        public int StatusVersion { get; init; }
    }

    // The jobs a pass chose from the ready queue, claimed: still queued and held by no other pass. A job never
    // attempted has no attempts to look up (the exclusions are for retries and replicas).
    private const string ClaimChosen = """
        select j.id, j.client_account_id as ClientAccountId, j.kernel, j.spec::text as Spec, j.estimated_gflop as EstimatedGflop,
               j.input_bytes as InputBytes, j.device, j.min_memory_mb as MinMemoryMb, j.region, j.policy, j.attempt_count as AttemptCount, j.spot_check as SpotCheck,
               j.trace_parent as TraceParent, j.status_version as StatusVersion,
               case when j.attempt_count > 0 then (select array_agg(a.worker_id) from attempts a where a.job_id = j.id and a.status = 'failed') end as FailedOn,
               case when j.attempt_count > 0 then (select array_agg(distinct a.operator_account_id) from attempts a
                                                   where a.job_id = j.id and a.status = 'submitted') end as ResultOperators,
               case when j.attempt_count > 0 then (select array_agg(distinct a.operator_account_id) from attempts a
                                                   where a.job_id = j.id and a.status = 'failed' and a.reason = any(@InputReasons)
                                                     and a.operator_account_id is not null) end as InputClaimOperators
        from jobs j
        where j.id = any(@ids) and j.status = 'queued'
        for update of j skip locked
        """;

    // Properties, not a positional record: Dapper matches constructors by exact column types, and Npgsql
    // reports text[] as Array.
    private sealed class WorkerRow
    {
        public string Id { get; init; } = "";
        public string OperatorAccountId { get; init; } = "";
        public string Region { get; init; } = "";
        public int Slots { get; init; }
        public string[] Kernels { get; init; } = [];
        public long MemoryMb { get; init; }
        public string[] DeviceKinds { get; init; } = [];
        public string Gflops { get; init; } = "{}";
        public double PowerWatts { get; init; }
        public int Active { get; init; }
        public decimal Stake { get; init; }
        public double Reputation { get; init; }
        public bool Alive { get; init; }
        /// <summary>Joules per GFLOP per kernel from accepted attempts, for kernels with enough of them; null for none.</summary>
        public string? JoulesPerGflop { get; init; }
        /// <summary>GFLOP/s the scheduler measured per kernel (its latest samples), for kernels with enough of them; null for none.</summary>
        public string? MeasuredGflops { get; init; }

        public WorkerFacts Facts => new(Id, Region, MemoryMb, Slots, DeviceKinds, Stake, Reputation);
    }

    // Every online worker (its slots bounded by Scheduler:MaxSlots, whatever it claims): those that may not get work (missed heartbeats, too little stake, too low a
    // reputation) are loaded to be told why.
    private const string LoadWorkers = """
        select w.id, w.operator_account_id as OperatorAccountId, w.region, least(w.slots, @MaxSlots) as Slots, w.kernels, w.memory_mb as MemoryMb, w.device_kinds as DeviceKinds, w.gflops::text as Gflops, w.power_watts as PowerWatts,
               (select coalesce(sum(coalesce(j.slot_units, @UnitsPerSlot)), 0) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running'))::int as Active,
               coalesce(s.staked, 0) as Stake, w.reputation, w.last_seen_at > @aliveSince as Alive,
               (select jsonb_object_agg(e.kernel, e.joules / e.gflop)::text from worker_energy e
                where e.worker_id = w.id and e.gflop > 0 and e.attempts >= @EnergySamples) as JoulesPerGflop,
               (select jsonb_object_agg(s.kernel, s.rates)::text from worker_speed s
                where s.worker_id = w.id and cardinality(s.rates) >= @ClaimSamples) as MeasuredGflops
        from workers w left join operator_stakes s on s.operator_account_id = w.operator_account_id
        where w.online
        """;

    // Every worker with a free slot is claimed for the rest of the pass's transaction, then its busy slots are counted
    // again by a second statement, sent in the same round trip (a statement of its own takes a new snapshot, after the
    // claim, so the count sees whatever another scheduler committed before it let go): another scheduler may have used
    // them. Only the claimed workers' counts are kept. The claim is an advisory lock that only dispatch passes take, not
    // a lock on the worker's row: the worker's own heartbeats lock that row several times a second, and a pass that
    // skipped a worker because a beat held its row gave the job to the next best one, even back to the worker that had
    // just failed it. A worker another pass holds is left out of this one.
    private const string ClaimWorkers = "select id from unnest(@ids) as w (id) where pg_try_advisory_xact_lock(@DispatchClaims, hashtext(w.id))";
    private const string CountActive = """
        select w.id, (select coalesce(sum(coalesce(j.slot_units, @UnitsPerSlot)), 0) from jobs j where j.worker_id = w.id and j.status in ('assigned', 'running'))::int as Active
        from workers w where w.id = any(@ids) and w.online
        """;

    /// <summary>The advisory lock space of dispatch claims on workers ("wrkr"), apart from any other lock's.</summary>
    private const int DispatchClaims = 0x77726b72;

    // A pass's assignments in one round trip, whatever their number: the jobs' update, the messages (AssignJob and the
    // status changes) and the attempts, in that order. The attempt rows follow the jobs' update, so each counts its
    // worker's attempts with this pass's included. Each job's status change takes the version after the one read when
    // the job was claimed for update (nothing else can have numbered one since); a job whose version moved anyway is not
    // updated, and the pass is rolled back.
    private const string Assign = """
        update jobs j set status = 'assigned', worker_id = a.worker_id, attempt_id = a.attempt_id, lease_deadline = @leaseDeadline,
                          attempt_deadline = a.attempt_deadline, attempt_count = j.attempt_count + 1, last_assigned_at = @now,
                          slot_units = a.slot_units, status_version = a.status_version
        from unnest(@jobIds, @workerIds, @attemptIds, @attemptDeadlines, @slotUnits, @statusVersions)
             as a (job_id, worker_id, attempt_id, attempt_deadline, slot_units, status_version)
        where j.id = a.job_id and j.status = 'queued' and j.status_version = a.status_version - 1
        returning j.id
        """;
    private const string InsertAttempts = """
        insert into attempts (id, job_id, worker_id, status, assigned_at, deadline, concurrent, kernel_revision)
        select a.attempt_id, a.job_id, a.worker_id, 'assigned', @now, a.attempt_deadline,
               (select count(*) from jobs where worker_id = a.worker_id and status in ('assigned', 'running')),
               (select kernel_revision from workers where id = a.worker_id)
        from unnest(@jobIds, @workerIds, @attemptIds, @attemptDeadlines) as a (job_id, worker_id, attempt_id, attempt_deadline)
        """;

    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var engine = new PlacementEngine(new PlacementModel(o));
        var all = (await connection.QueryAsync<WorkerRow>(new CommandDefinition(
            LoadWorkers, new { aliveSince = now - 3 * o.HeartbeatInterval, o.EnergySamples, o.ClaimSamples, o.MaxSlots, UnitsPerSlot }, tx, cancellationToken: ct))).ToList();
        var ineligible = new List<(WorkerRow Worker, PlacementReason Reason)>();
        var eligible = new List<WorkerRow>();
        foreach (var w in all)
        {
            if (PlacementReasons.Ineligibility(w.Alive, w.Stake, w.Reputation, o) is { } reason)
                ineligible.Add((w, reason));
            else
                eligible.Add(w);
        }
        // With no free slot there is nothing to place. (A worker that may not get work at all is told why by its
        // standing, read from its row, so explaining it is no reason to read the queue.)
        var withFreeSlots = eligible.Where(w => w.Active < w.Slots * UnitsPerSlot).Select(w => w.Id).ToArray();
        var active = new Dictionary<string, int>();
        if (withFreeSlots.Length > 0)
        {
            // Both statements in one round trip; the count is still a statement of its own, after the claim.
            await using var results = await connection.QueryMultipleAsync(new CommandDefinition(
                ClaimWorkers + ";\n" + CountActive, new { ids = withFreeSlots, DispatchClaims, UnitsPerSlot }, tx, cancellationToken: ct));
            var claimed = (await results.ReadAsync<string>()).ToHashSet();
            foreach (var (id, busy) in await results.ReadAsync<(string Id, int Active)>())
            {
                if (claimed.Contains(id))
                    active[id] = busy;
            }
        }

        var placed = new Dictionary<string, (Dictionary<string, double> Rates, int Slots)>();
        var workers = new List<WorkerRow>();
        var freeUnits = 0;
        foreach (var w in eligible)
        {
            workers.Add(w);
            // Only workers this pass holds take jobs in it: one another pass holds, or that went offline since it was
            // loaded, is left for the next pass (the engine explains it as full).
            var capacity = w.Slots * UnitsPerSlot;
            var busy = Math.Min(capacity, active.TryGetValue(w.Id, out var counted) ? counted : capacity);
            // A worker runs the kernels it lists; one it has not measured is assumed slow rather than left out. What it
            // claims is believed only up to what the scheduler measured of it (WorkerClaims).
            var claimedRates = JsonSerializer.Deserialize<Dictionary<string, double>>(w.Gflops, PlatformJson.Options)!;
            var measured = WorkerClaims.Measured(w.MeasuredGflops);
            var rates = w.Kernels.ToDictionary(k => k, k => WorkerClaims.EffectiveRate(
                claimedRates.TryGetValue(k, out var rate) && rate > 0 ? rate : UnmeasuredGflops, measured.GetValueOrDefault(k), o));
            placed[w.Id] = (rates, w.Slots);
            var energy = w.JoulesPerGflop is null ? null : JsonSerializer.Deserialize<Dictionary<string, double>>(w.JoulesPerGflop, PlatformJson.Options);
            engine.Add(new WorkerState(w.Id, w.Region, w.Slots, busy, w.MemoryMb, w.DeviceKinds, rates, w.PowerWatts, energy, UnitsPerSlot));
            freeUnits += capacity - busy;
        }
        if (!engine.HasCapacity)
        {
            await tx.CommitAsync(ct);
            return 0;
        }
        var workersByOperator = workers.ToLookup(w => w.OperatorAccountId, w => w.Id);

        if (ready.LoadedSince(now - o.ReadyQueueReload))
            await ready.AddRequeuedAsync(connection, tx, BatchSize, ct);
        else
            await ready.ReloadAsync(connection, tx, now, ct);
        await fairShare.LoadIfStaleAsync(connection, tx, ct);
        var (usageClients, usageCounts) = fairShare.Snapshot();
        var usage = usageClients.Zip(usageCounts).ToDictionary(u => u.First, u => u.Second);
        // Sized for whole slots; when tiny jobs share slots, for as many tiny jobs as the free units hold.
        var window = Math.Min(BatchSize, Math.Max(MinWindow, UnitsPerSlot > 1 ? freeUnits : freeUnits * WindowPerFreeSlot));
        var chosen = ready.Candidates(window, usage);
        var queued = await ClaimAsync(connection, tx, chosen, ct);
        // Stamped after the claim, not at the pass's start: a job funded while the workers were being loaded was queued
        // after `now`, and its assignment must not read as earlier than its queueing in the job's event stream.
        var assignedAt = clock.GetUtcNow();

        // Placed in memory against the slots this pass holds, then written all at once.
        var assignments = new List<(QueuedJob Job, PlacementChoice Choice, AttemptId AttemptId, DateTimeOffset AttemptDeadline, int SlotUnits)>();
        var explanations = new PlacementExplainer(placementLog, all, ineligible, o, now);
        var noFit = 0;
        for (var i = 0; engine.HasCapacity; i++)
        {
            // The window was full and its jobs did not fill the free slots (they want a kernel, device or region those
            // slots do not offer, or another pass holds them): the same pass looks further down the queue, the jobs
            // already chosen left out.
            // With only parts of slots left, only tiny jobs further down could use them: look further only when the
            // window had tiny jobs (a queue of big jobs would otherwise claim the whole batch on every pass).
            if (i == queued.Count && chosen.Count == window && window < BatchSize && (engine.HasWholeSlot || queued.Any(IsTiny)))
            {
                var seen = chosen.Select(c => c.Id).ToHashSet();
                window = BatchSize;
                queued.AddRange(await ClaimAsync(connection, tx, ready.Candidates(window, usage, seen), ct));
            }
            if (i == queued.Count)
                break;
            var job = queued[i];
            var demand = new JobDemand(job.Kernel, job.EstimatedGflop, job.InputBytes, job.Device, job.MinMemoryMb, job.Region,
                PlacementPolicies.Parse(job.Policy ?? o.DefaultPolicy), IsTiny(job));
            var exclude = (job.ResultOperators ?? []).Concat(job.InputClaimOperators ?? []).SelectMany(op => workersByOperator[op]).ToHashSet();
            var failedOn = job.FailedOn ?? [];
            var choice = engine.Place(demand, failedOn, exclude);
            // A spot check is the network's, not the client's: when no other operator's worker inside the job's
            // region and device pin can take it, one outside may (outputs are compared within tolerance, which
            // covers other devices' rounding), so pinning a job to one's own nodes does not escape checks.
            if (choice is null && job.SpotCheck && job.ResultOperators is { Length: > 0 } && (demand.Region is not null || demand.Device != "any"))
            {
                demand = demand with { Region = null, Device = "any" };
                choice = engine.Place(demand, failedOn, exclude);
            }
            explanations.Add(engine, $"{job.Id}#{job.AttemptCount + 1}", demand, choice, failedOn, exclude);
            if (choice is null)
            {
                noFit++;
                continue;
            }
            var (workerRates, workerSlots) = placed[choice.WorkerId];
            assignments.Add((job, choice, AttemptId.New(), AttemptDeadline(job, workerRates[job.Kernel], workerSlots, assignedAt), demand.Tiny ? 1 : UnitsPerSlot));
        }
        await AssignAsync(connection, tx, assignments, assignedAt, ct);
        var assigned = assignments.Count;
        outbox.AfterCommit(tx, () => SchedulerMetrics.PassEnded(assigned, noFit));
        await outbox.CommitAsync(tx, ct);
        fairShare.Record(assignments.Select(a => a.Job.ClientAccountId), assignedAt);
        ready.Remove(assignments.Select(a => a.Job.Id));
        return assignments.Count;
    }

    /// <summary>
    /// Claims the chosen jobs, in the order chosen; those no longer queued (assigned by another scheduler, cancelled)
    /// leave the ready queue.
    /// </summary>
    private async Task<List<QueuedJob>> ClaimAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<ReadyQueue.Entry> chosen, CancellationToken ct)
    {
        if (chosen.Count == 0)
            return [];
        var claimed = (await connection.QueryAsync<QueuedJob>(new CommandDefinition(
            ClaimChosen, new { ids = chosen.Select(c => c.Id).ToArray(), InputReasons = AttemptFailedConsumer.PermanentReasons.ToArray() },
            tx, cancellationToken: ct))).ToDictionary(j => j.Id);
        var missing = chosen.Where(c => !claimed.ContainsKey(c.Id)).Select(c => c.Id).ToArray();
        if (missing.Length > 0)
        {
            // Still queued but held by another pass (which may let it go unassigned): it stays.
            var held = (await connection.QueryAsync<string>(new CommandDefinition(
                "select id from jobs where id = any(@missing) and status = 'queued'", new { missing }, tx, cancellationToken: ct))).ToHashSet();
            ready.Remove(missing.Where(id => !held.Contains(id)));
        }
        return [.. chosen.Where(c => claimed.ContainsKey(c.Id)).Select(c => claimed[c.Id])];
    }

    /// <summary>
    /// Records, for each job a pass places (or cannot), what became of every online worker. At most
    /// <see cref="SchedulerOptions.PlacementHistory"/> records per worker per pass, so a pass over many jobs and
    /// many workers stays linear in the workers.
    /// </summary>
    private sealed class PlacementExplainer(PlacementLog log, List<WorkerRow> all, List<(WorkerRow Worker, PlacementReason Reason)> ineligible,
        SchedulerOptions options, DateTimeOffset now)
    {
        private readonly Dictionary<string, int> _counts = [];
        private int _full;

        public bool Done => _full >= all.Count;

        public void Add(PlacementEngine engine, string placement, JobDemand demand, PlacementChoice? choice, IReadOnlyCollection<string> failedOn, IReadOnlyCollection<string> exclude)
        {
            if (Done)
                return;
            foreach (var (worker, reason) in ineligible)
                Record(worker, placement, demand, choice, new PassedOver(reason));
            foreach (var worker in all)
            {
                if (_counts.GetValueOrDefault(worker.Id) >= log.Keep)
                    continue;
                if (worker.Id == choice?.WorkerId)
                    Record(worker, placement, demand, choice, new PassedOver(PlacementReason.Chosen));
                else if (engine.Explain(worker.Id, demand, choice, failedOn, exclude) is { } passedOver)
                    Record(worker, placement, demand, choice, passedOver);
            }
        }

        private void Record(WorkerRow worker, string placement, JobDemand demand, PlacementChoice? choice, PassedOver outcome)
        {
            var count = _counts.GetValueOrDefault(worker.Id);
            if (count >= log.Keep)
                return;
            _counts[worker.Id] = ++count;
            if (count == log.Keep)
                _full++;
            var explanation = PlacementReasons.Explain(outcome, worker.Facts, demand, choice?.WorkerId, options);
            SchedulerMetrics.WorkerPassedOver(explanation.Code);
            log.Add(worker.Id, new PlacementRecord(now, placement, demand.Kernel, explanation.Code, explanation.Message, explanation.Fix, choice?.WorkerId));
        }
    }

    /// <summary>
    /// When the attempt is overdue, however often its worker beats: its expected time (the job's GFLOP at the worker's
    /// effective rate, as if every slot of the worker shared the device, plus the input transfer) times the slack,
    /// and never less than the minimum attempt time.
    /// </summary>
    private DateTimeOffset AttemptDeadline(QueuedJob job, double rate, int slots, DateTimeOffset now)
    {
        var o = options.Value;
        var expected = job.EstimatedGflop * slots / rate + job.InputBytes / (o.TransferMegabytesPerSecond * 1e6);
        var allowed = o.AttemptTimeSlack * expected;
        // Capped at a year: a worker's absurd figures must not overflow the date.
        return now + (double.IsFinite(allowed) && allowed < TimeSpan.FromDays(365).TotalSeconds
            ? TimeSpan.FromTicks(Math.Max(o.MinimumAttemptTime.Ticks, TimeSpan.FromSeconds(allowed).Ticks))
            : TimeSpan.FromDays(365));
    }

    private async Task AssignAsync(NpgsqlConnection connection, NpgsqlTransaction tx,
        List<(QueuedJob Job, PlacementChoice Choice, AttemptId AttemptId, DateTimeOffset AttemptDeadline, int SlotUnits)> assignments, DateTimeOffset now, CancellationToken ct)
    {
        if (assignments.Count == 0)
            return;
        var leaseDeadline = now + options.Value.LeaseDuration;
        var jobIds = assignments.Select(a => a.Job.Id).ToArray();
        var workerIds = assignments.Select(a => a.Choice.WorkerId).ToArray();
        var attemptIds = assignments.Select(a => a.AttemptId.Value).ToArray();
        var attemptDeadlines = assignments.Select(a => a.AttemptDeadline).ToArray();

        // Each job's assignment continues the job's own trace, not this pass's.
        using var traces = JobTraces.Begin("dispatch", assignments.Select(a => (JobId.From(a.Job.Id), a.Job.TraceParent)));
        // Each status change takes the version after the one read when the job was claimed for update; the update below
        // sets the same number only where the job still has the version read.
        var statusVersions = assignments.Select(a => a.Job.StatusVersion + 1).ToArray();
        // Every AssignJob first, then the status changes: the relay sends from memory in batches of rows in this order,
        // and under load the nodes' work should not wait behind the read model's events.
        var messages = new List<MessageOutbox.Outgoing>(2 * assignments.Count);
        messages.AddRange(assignments.Select(a => new MessageOutbox.Outgoing(new AssignJob
        {
            JobId = JobId.From(a.Job.Id),
            AttemptId = a.AttemptId,
            WorkerId = WorkerId.From(a.Choice.WorkerId),
            Spec = JsonSerializer.Deserialize<JobSpec>(a.Job.Spec, PlatformJson.Options)!,
            LeaseDeadline = leaseDeadline,
            OccurredAt = now,
        }, NodeNames.AssignmentAddress(WorkerId.From(a.Choice.WorkerId)))));
        messages.AddRange(assignments.Select((a, i) => new MessageOutbox.Outgoing(new JobStatusChanged
        {
            JobId = JobId.From(a.Job.Id),
            // A job with a result already is waiting for another to compare it with.
            Status = a.Job.ResultOperators is { Length: > 0 } ? "verifying" : "assigned",
            WorkerId = WorkerId.From(a.Choice.WorkerId),
            AttemptId = a.AttemptId,
            AttemptStatus = "assigned",
            OccurredAt = now,
            Version = statusVersions[i],
        })));
        var staged = outbox.Stage(tx, messages);

        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(Assign)
                {
                    Parameters =
                    {
                        new("jobIds", jobIds), new("workerIds", workerIds), new("attemptIds", attemptIds), new("attemptDeadlines", attemptDeadlines),
                        new("slotUnits", assignments.Select(a => a.SlotUnits).ToArray()),
                        new("statusVersions", statusVersions),
                        new("leaseDeadline", leaseDeadline), new("now", now),
                    },
                },
                staged.Command,
                // Timed by the scheduler's clock from here (assigned_at) to the result, with the attempts the worker now
                // holds (this pass's included), for measuring its speed; the deadline is the lease monitor's. The kernel
                // revision the worker announced is fixed for the attempt here: it decides how the result is compared
                // (ResultComparer).
                new NpgsqlBatchCommand(InsertAttempts)
                {
                    Parameters =
                    {
                        new("jobIds", jobIds), new("workerIds", workerIds), new("attemptIds", attemptIds), new("attemptDeadlines", attemptDeadlines),
                        new("now", now),
                    },
                },
            },
        };
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            var updated = 0;
            while (await reader.ReadAsync(ct))
                updated++;
            // The jobs are this pass's (claimed for update above): all of them are still queued, at the version read.
            if (updated != assignments.Count)
                throw new InvalidOperationException($"{assignments.Count} jobs placed but {updated} still queued at the status version read: the pass is rolled back");
            await reader.NextResultAsync(ct);
            await staged.ReadAsync(reader, ct);
            // The attempts' insert runs as the reader moves past it: its error, if any, is thrown here.
            while (await reader.NextResultAsync(ct))
            {
            }
        }
        if (batch.BatchCommands[2].RecordsAffected != assignments.Count)
            throw new InvalidOperationException($"{assignments.Count} jobs placed but {batch.BatchCommands[2].RecordsAffected} attempts written: the pass is rolled back");
    }
}
