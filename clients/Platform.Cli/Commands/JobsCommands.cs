using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Platform.Client;
using Platform.Contracts.Api;
using Spectre.Console;

namespace Platform.Cli.Commands;

public static class JobsCommands
{
    public static Command Build(CliHost host)
    {
        var jobs = new Command("jobs", "Submit compute jobs and follow them");
        jobs.Subcommands.Add(Submit(host));
        jobs.Subcommands.Add(SubmitBatch(host));

        var status = new Option<string?>("--status") { Description = "Only jobs with this status" };
        status.AcceptOnlyFromAmong("pending", "queued", "assigned", "running", "verifying", "completed", "failed", "cancelled", "rejected");
        var limit = new Option<int>("--limit") { Description = "At most this many (newest first)", DefaultValueFactory = _ => 20 };
        var list = new Command("list", "The account's jobs, newest first") { status, limit };
        list.SetRun(host, async (s, ct) =>
        {
            var found = await s.Client.ListJobsAsync(s.Get(status), Math.Clamp(s.Get(limit), 1, 200), ct).Take(Math.Max(1, s.Get(limit))).ToListAsync(ct);
            s.Show(found, all =>
            {
                var table = Output.Table("job", "kernel", "status", "progress", "cost", "created");
                foreach (var j in all)
                    table.Row(j.Id, j.Kernel, j.Status, j.Progress is { } p ? Output.Percent(p) : null, Output.Credits(j.Cost), Output.Time(j.CreatedAt));
                s.Host.Out.Write(table);
            });
            return 0;
        });
        jobs.Subcommands.Add(list);

        var getId = new Argument<string>("ID") { Description = "The job's id (job_...)" };
        var get = new Command("get", "One job: status, outputs, cost, attempts") { getId };
        get.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetJobAsync(s.Get(getId), ct), j => ShowJob(s, j));
            return 0;
        });
        jobs.Subcommands.Add(get);

        var watchId = new Argument<string>("ID") { Description = "The job's id" };
        var watch = new Command("watch", "Print a job's status changes and progress until it finishes") { watchId };
        watch.SetRun(host, async (s, ct) =>
        {
            JobStatusEvent? last = null;
            await foreach (var e in s.Client.WatchAsync(s.Get(watchId), ct))
            {
                if (s.Json)
                    s.Host.Output.WriteLine(JsonSerializer.Serialize(new { @event = e is JobStatusEvent ? "status" : "progress", data = (object)e }, Output.JsonLines));
                else
                    s.Host.Output.WriteLine(Describe(e));
                if (e is JobStatusEvent status)
                    last = status;
            }
            return last?.Status == "completed" ? 0 : Cli.Failed;
        });
        jobs.Subcommands.Add(watch);

        var cancelId = new Argument<string>("ID") { Description = "The job's id" };
        var cancel = new Command("cancel", "Cancel a job that has not finished; its escrow is refunded") { cancelId };
        cancel.SetRun(host, async (s, ct) =>
        {
            var job = await s.Client.CancelJobAsync(s.Get(cancelId), ct);
            s.Show(job, j => s.Host.Output.WriteLine($"{j.Id}: cancelled; its escrow is refunded"));
            return 0;
        });
        jobs.Subcommands.Add(cancel);

        var batchId = new Argument<string>("ID") { Description = "The batch's id (bat_...)" };
        var batch = new Command("batch", "A batch of jobs: how many, how many in each status, whether all finished") { batchId };
        batch.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetBatchAsync(s.Get(batchId), ct), b => ShowBatch(s, b));
            return 0;
        });
        jobs.Subcommands.Add(batch);

        var cancelBatchId = new Argument<string>("ID") { Description = "The batch's id" };
        var cancelBatch = new Command("cancel-batch", "Cancel every job of a batch that has not finished; their escrow is refunded") { cancelBatchId };
        cancelBatch.SetRun(host, async (s, ct) =>
        {
            var cancelled = await s.Client.CancelBatchAsync(s.Get(cancelBatchId), ct);
            s.Show(cancelled, b => s.Host.Output.WriteLine($"{b.Id}: cancel requested for the jobs not finished ({b.Done}/{b.Total} had finished)"));
            return 0;
        });
        jobs.Subcommands.Add(cancelBatch);
        jobs.Subcommands.Add(ReceiptCommands.Fetch(host));
        return jobs;
    }

    /// <summary>
    /// Warns before submitting when the account is below its low-balance threshold, or when the job's maxPrice is
    /// above the balance (the escrow may then fail). The job is submitted anyway: rewards decides, from the estimate.
    /// </summary>
    private static async Task WarnAboutBalanceAsync(Session s, decimal? maxPrice, CancellationToken ct)
    {
        AccountResponse account;
        try
        {
            account = await s.Client.GetAccountAsync(ct);
        }
        catch (PlatformApiException)
        {
            // No account view (an admin key without a ledger account, say): nothing to warn about, and the submit says the rest.
            return;
        }
        if (account.LowBalance)
            Output.Warn(s.Host, AccountCommands.LowBalanceWarning(account));
        if (maxPrice is { } max && max > account.Balance)
            Output.Warn(s.Host, $"this job may be rejected for insufficient credits: balance {Output.Credits(account.Balance)}, maxPrice {Output.Credits(max)}");
    }

    private static Command Submit(CliHost host)
    {
        var kernel = new Argument<string>("KERNEL") { Description = "vector-add, matmul, kmeans, knn, train-logreg or mlp-infer" };
        var inputs = JobArguments.InputOption();
        var parameters = JobArguments.ParamOption();
        var replicas = new Option<int?>("--replicas") { Description = "Agreeing results needed, each from a different operator (1-5)" };
        var maxPrice = new Option<decimal?>("--max-price") { Description = "Refuse the job if its estimate is above this many credits" };
        var region = new Option<string?>("--region") { Description = "Run only on workers in this region" };
        var device = new Option<string?>("--device") { Description = "any, cpu or gpu" };
        device.AcceptOnlyFromAmong("any", "cpu", "gpu");
        var key = new Option<string?>("--idempotency-key") { Description = "Submitting again with the same key returns the first job" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the job until it finishes, then print its outputs and cost" };
        var submit = new Command("submit", "Submit a job (inputs that are files are pinned first); prints its id")
        {
            kernel, inputs, parameters, replicas, maxPrice, region, device, key, wait,
        };
        submit.SetRun(host, async (s, ct) =>
        {
            var resolved = new Dictionary<string, string>();
            foreach (var input in s.Get(inputs))
            {
                if (input.Cid is not null)
                {
                    resolved[input.Name] = input.Cid;
                    continue;
                }
                var pinned = await BlobsCommands.PinFileAsync(s, new FileInfo(input.File!), ct);
                s.Host.Error.WriteLine($"pinned {input.Name}={Path.GetFileName(input.File)} as {pinned.Cid}");
                resolved[input.Name] = pinned.Cid;
            }
            var request = new SubmitJobRequest
            {
                Kernel = s.Get(kernel),
                Inputs = resolved,
                Params = (s.Get(parameters) ?? []).ToDictionary(p => p.Key, p => JsonSerializer.SerializeToElement(p.Value)),
                Replicas = s.Get(replicas),
                MaxPrice = s.Get(maxPrice),
                Requirements = s.Get(region) is null && s.Get(device) is null ? null : new RequirementsRequest(s.Get(device), null, s.Get(region)),
            };
            await WarnAboutBalanceAsync(s, request.MaxPrice, ct);
            var job = await s.Client.SubmitJobAsync(request, s.Get(key), ct);
            if (!s.Get(wait))
            {
                s.Show(job, j =>
                {
                    s.Host.Output.WriteLine(j.Id);
                    s.Host.Error.WriteLine($"submitted: {j.Status}; follow it with 'platform jobs watch {j.Id}'");
                });
                return 0;
            }

            s.Host.Error.WriteLine($"submitted {job.Id}");
            await FollowAsync(s, job.Id, ct);
            job = await SettledAsync(s, job.Id, ct);
            s.Show(job, j => ShowJob(s, j));
            if (job.Status != "completed")
                throw new CommandFailedException($"job {job.Id} {job.Status}" + (job.StatusReason is { } why ? $" ({why.Code}): {why.Message}" : ""));
            return 0;
        });
        return submit;
    }

    private static Command SubmitBatch(CliHost host)
    {
        var file = new Argument<string>("FILE")
        {
            Description = "JSON {\"jobs\": [...]} or a bare array of jobs, each entry as 'POST /v1/jobs' takes it; - reads stdin",
        };
        var key = new Option<string?>("--idempotency-key") { Description = "Submitting the same jobs again with the same key returns the first batch" };
        var wait = new Option<bool>("--wait", "-w") { Description = $"Follow the batch until every job finished; exit {Cli.Failed} unless every one completed" };
        var submit = new Command("submit-batch",
            "Submit many jobs as one batch (1-10,000; all are created or none); prints the batch id. Inputs are CIDs of pinned blobs: no files are pinned, 'platform blobs put' them first")
        {
            file, key, wait,
        };
        submit.SetRun(host, async (s, ct) =>
        {
            var path = s.Get(file);
            var json = path == "-" ? await s.Host.Input.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
            var requests = JobArguments.ParseBatch(json, path == "-" ? "stdin" : path);
            await WarnAboutBalanceAsync(s, null, ct);
            var batch = await s.Client.SubmitJobsAsync(requests, s.Get(key), ct);
            if (!s.Get(wait))
            {
                s.Show(batch, b =>
                {
                    s.Host.Output.WriteLine(b.Id);
                    s.Host.Error.WriteLine($"submitted {b.Total} jobs; see them with 'platform jobs batch {b.Id}'");
                });
                return 0;
            }

            s.Host.Error.WriteLine($"submitted {batch.Id}: {batch.Total} jobs");
            batch = await FollowBatchAsync(s, batch, ct);
            s.Show(batch, b => ShowBatch(s, b));
            if (batch.Count("completed") != batch.Total)
                throw new CommandFailedException($"batch {batch.Id}: {batch.Total - batch.Count("completed")} of {batch.Total} jobs did not complete ({Unsuccessful(batch)})");
            return 0;
        });
        return submit;
    }

    /// <summary>
    /// Follows the batch's stream, counting its jobs as they finish: a live count on a terminal; otherwise a line
    /// on stderr when the count changes, at most one a second (a batch of thousands would print thousands), and the
    /// last. Returns the batch as the gateway counts it at the end, which is what the exit code goes by.
    /// </summary>
    private static async Task<JobBatchView> FollowBatchAsync(Session s, JobBatchView batch, CancellationToken ct)
    {
        // Each job's latest status; a terminal one is kept, since a job never leaves it.
        var latest = new Dictionary<string, string>(StringComparer.Ordinal);
        JobBatchView Seen() => batch with { Counts = latest.Values.GroupBy(v => v).ToDictionary(g => g.Key, g => g.Count()) };
        void Record(JobStatusEvent e)
        {
            if (!JobStatuses.IsTerminal(latest.GetValueOrDefault(e.JobId)))
                latest[e.JobId] = e.Status;
        }

        var console = s.Host.Status;
        string? printed = null;
        if (console.Profile.Capabilities.Interactive)
        {
            await console.Progress()
                .AutoClear(true)
                .Columns(new SpinnerColumn(), new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape($"{batch.Id} {BatchProgress(batch)}"), maxValue: Math.Max(1, batch.Total));
                    await foreach (var e in s.Client.WatchBatchAsync(batch.Id, ct))
                    {
                        Record(e);
                        var seen = Seen();
                        task.Description = Markup.Escape($"{batch.Id} {BatchProgress(seen)}");
                        task.Value = seen.Done;
                    }
                });
        }
        else
        {
            var printedAt = 0L;
            await foreach (var e in s.Client.WatchBatchAsync(batch.Id, ct))
            {
                Record(e);
                var line = BatchProgress(Seen());
                if (!s.Json && line != printed && System.Diagnostics.Stopwatch.GetElapsedTime(printedAt) >= TimeSpan.FromSeconds(1))
                {
                    s.Host.Error.WriteLine(line);
                    (printed, printedAt) = (line, System.Diagnostics.Stopwatch.GetTimestamp());
                }
            }
        }
        batch = await s.Client.GetBatchAsync(batch.Id, ct);
        var last = BatchProgress(batch);
        if (!s.Json && !console.Profile.Capabilities.Interactive && last != printed)
            s.Host.Error.WriteLine(last);
        return batch;
    }

    /// <summary>"7/10 done, 1 failed, 1 rejected": the batch's finished jobs, and those that finished without a result.</summary>
    public static string BatchProgress(JobBatchView b) => $"{b.Done}/{b.Total} done" + (Unsuccessful(b) is { Length: > 0 } bad ? ", " + bad : "");

    /// <summary>"1 failed, 1 rejected"; empty when none.</summary>
    private static string Unsuccessful(JobBatchView b) =>
        string.Join(", ", new[] { "failed", "cancelled", "rejected" }.Where(st => b.Count(st) > 0).Select(st => $"{b.Count(st)} {st}"));

    // The order jobs move through, so the counts read as a pipeline; a status this CLI does not know goes last.
    private static readonly string[] StatusOrder = ["pending", "queued", "assigned", "running", "verifying", "completed", "failed", "cancelled", "rejected"];

    public static void ShowBatch(Session s, JobBatchView b)
    {
        s.Host.Out.Write(Output.Facts(("batch", b.Id), ("created", Output.Time(b.CreatedAt)), ("jobs", b.Total.ToString(CultureInfo.InvariantCulture)),
            ("finished", b.Finished ? "yes" : "no"), ("progress", BatchProgress(b))));
        var counts = Output.Table("status", "jobs");
        foreach (var (status, count) in b.Counts.OrderBy(c => Array.IndexOf(StatusOrder, c.Key) is var i && i >= 0 ? i : StatusOrder.Length).ThenBy(c => c.Key, StringComparer.Ordinal))
            counts.Row(status, count.ToString(CultureInfo.InvariantCulture));
        s.Host.Out.Write(counts);
    }

    private static readonly string[] TerminalStatuses = ["completed", "failed", "cancelled", "rejected"];

    /// <summary>
    /// The job once its record has caught up with its events: the stream says completed as soon as the scheduler
    /// accepts the result, while the cost arrives a moment later from rewards. Gives up waiting after a while and
    /// shows the job as it is.
    /// </summary>
    private static async Task<JobView> SettledAsync(Session s, string jobId, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var job = await s.Client.GetJobAsync(jobId, ct);
            var settled = TerminalStatuses.Contains(job.Status) && (job.Status != "completed" || job.Cost is not null);
            if (settled || DateTimeOffset.UtcNow > deadline)
                return job;
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    /// <summary>Follows the job's events: a live status line and progress bar on a terminal, one line per change otherwise.</summary>
    private static async Task FollowAsync(Session s, string jobId, CancellationToken ct)
    {
        var console = s.Host.Status;
        if (!console.Profile.Capabilities.Interactive)
        {
            await foreach (var e in s.Client.WatchAsync(jobId, ct))
            {
                if (e is JobStatusEvent && !s.Json)
                    s.Host.Error.WriteLine(Describe(e));
            }
            return;
        }
        await console.Progress()
            .AutoClear(true)
            .Columns(new SpinnerColumn(), new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape($"{jobId} submitted"), maxValue: 1);
                await foreach (var e in s.Client.WatchAsync(jobId, ct))
                {
                    switch (e)
                    {
                        case JobStatusEvent status:
                            task.Description = Markup.Escape($"{jobId} {status.Status}" + (status.WorkerId is { } w ? $" on {w}" : ""));
                            if (status.Status == "completed")
                                task.Value = 1;
                            break;
                        case JobProgressEvent progress:
                            task.Value = Math.Clamp(progress.Fraction, 0, 1);
                            break;
                    }
                }
            });
    }

    public static string Describe(JobEvent e) => (e switch
    {
        JobStatusEvent s => $"{Output.Time(s.OccurredAt)}  {s.Status,-9}" +
            (s.WorkerId is { } w ? $"  worker {w}" : "") + (s.AttemptId is { } a ? $"  attempt {a}" + (s.AttemptStatus is { } st ? $" {st}" : "") : "") +
            (s.Reason is { } r ? $"  {r}" + ((s.Message ?? s.Detail) is { } text ? $": {text}" : "") : s.Message is { } m ? $"  {m}" : ""),
        JobProgressEvent p => $"{Output.Time(DateTimeOffset.Now)}  progress   {Output.Percent(p.Fraction)}",
        _ => e.ToString(),
    }).TrimEnd();

    public static void ShowJob(Session s, JobView j)
    {
        var took = j.CompletedAt is { } done ? $" in {(done - j.CreatedAt).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s" : "";
        s.Host.Out.Write(Output.Facts(("job", j.Id), ("kernel", j.Kernel), ("status", j.Status + took),
            ("progress", j.Progress is { } p ? Output.Percent(p) : null), ("cost", j.Cost is null ? null : $"{Output.Credits(j.Cost)} credits"),
            ("energy", Energy(j.Energy)),
            ("created", Output.Time(j.CreatedAt)),
            ("reason", j.StatusReason is { } why ? $"{why.Code}: {why.Message}" : j.Error is { } e ? $"{e.Reason}: {e.Detail}" : null)));
        var data = Output.Table("", "name", "cid");
        foreach (var (name, cid) in j.Inputs.OrderBy(i => i.Key, StringComparer.Ordinal))
            data.Row("input", name, cid);
        foreach (var (name, cid) in (j.Outputs ?? new Dictionary<string, string>()).OrderBy(o => o.Key, StringComparer.Ordinal))
            data.Row("output", name, cid);
        s.Host.Out.Write(data);
        if (j.Attempts.Count > 0)
        {
            var attempts = Output.Table("attempt", "worker", "status", "energy", "why it ended");
            foreach (var a in j.Attempts)
            {
                attempts.Row(a.AttemptId, a.WorkerId, a.Status,
                    a.Joules is { } joules ? Output.Joules(joules) + (a.JoulesEstimated == true ? " (estimated)" : "") : "-",
                    a.StatusReason is { } ended ? $"{ended.Code}: {ended.Message}" : "");
            }
            s.Host.Out.Write(attempts);
        }
    }

    /// <summary>"0.58 J (estimated), 1.1e6 J/GFLOP": the joules of the accepted attempts, replicas and spot checks included.</summary>
    public static string? Energy(JobEnergy? energy) => energy is null ? null
        : $"{Output.Joules(energy.Joules)} ({(energy.Estimated ? "estimated" : "measured")})"
            + (energy.JoulesPerGflop is { } perGflop ? $", {Output.Significant(perGflop)} J/GFLOP" : "");
}
