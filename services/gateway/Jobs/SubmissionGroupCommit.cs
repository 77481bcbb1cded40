using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Gateway.Metrics;
using Platform.Hosting.Outbox;
using Platform.Hosting.Tracing;

namespace Platform.Gateway.Jobs;

/// <summary>
/// Group commit of single submissions (POST /v1/jobs without an idempotency key): jobs posted while a group is being
/// written wait for that commit and are then written together, up to <see cref="MaxGroup"/> at a time, by the same
/// three statements a job array takes (<see cref="JobSubmission.WriteAsync(NpgsqlTransaction, MessageOutbox, string?, IReadOnlyList{JobSubmission.ClientJob}, DateTimeOffset, CancellationToken)"/>)
/// and one commit. Nothing waits on a quiet network: the first job starts a write at once. A busy one gathers jobs in
/// the time a commit takes (a disk flush), which is what lets many clients' single jobs share one transaction. Each
/// request still answers only after its job is committed.
/// </summary>
/// <remarks>
/// A submission with an idempotency key is written in a transaction of its own: its key is claimed in the same
/// transaction as its job, and a claim lost to a concurrent request must roll back only that request's job.
/// </remarks>
public sealed class SubmissionGroupCommit(NpgsqlDataSource db, MessageOutbox outbox, IOptions<SubmissionOptions> options, TimeProvider clock)
{
    public const int MaxGroup = 256;

    private sealed record Waiting(JobSubmission.ClientJob Job, string? TraceParent, TaskCompletionSource<DateTimeOffset> Written);

    private readonly ConcurrentQueue<Waiting> _queue = new();
    private int _writing;
    private long _groups;
    private long _jobs;

    /// <summary>Groups and jobs written since start: for tests and operators, the proof that jobs share commits.</summary>
    public (long Groups, long Jobs) Written => (Interlocked.Read(ref _groups), Interlocked.Read(ref _jobs));

    /// <summary>Writes the job with whatever other submissions are waiting; returns its creation time as stored.</summary>
    public Task<DateTimeOffset> WriteAsync(AccountId client, JobSubmission.CheckedJob job)
    {
        // The request's span: each job's JobSubmitted continues its own request's trace, whichever request started the writer.
        var waiting = new Waiting(new(client, job), Activity.Current is { IdFormat: ActivityIdFormat.W3C } a ? a.Id : null,
            new(TaskCreationOptions.RunContinuationsAsynchronously));
        _queue.Enqueue(waiting);
        if (Interlocked.CompareExchange(ref _writing, 1, 0) == 0)
        {
            // The writer serves every request that comes while it runs: it must not run inside the first one's span.
            using (ExecutionContext.SuppressFlow())
                _ = Task.Run(WriteWaitingAsync);
        }
        return waiting.Written.Task;
    }

    // One writer at a time, started by whichever request finds none running; it writes until nothing waits.
    private async Task WriteWaitingAsync()
    {
        while (true)
        {
            while (!_queue.IsEmpty)
            {
                if (options.Value.GroupWait > TimeSpan.Zero && _queue.Count < MaxGroup)
                    await Task.Delay(options.Value.GroupWait, clock);
                var group = new List<Waiting>(Math.Min(_queue.Count, MaxGroup));
                while (group.Count < MaxGroup && _queue.TryDequeue(out var next))
                    group.Add(next);
                await WriteGroupAsync(group);
            }
            Volatile.Write(ref _writing, 0);
            // A job queued after the last look but before the flag was cleared found a writer still running: take it on.
            if (_queue.IsEmpty || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
                return;
        }
    }

    private async Task WriteGroupAsync(List<Waiting> group)
    {
        try
        {
            var now = JobSubmission.CreationTime(clock);
            await using (var connection = await db.OpenConnectionAsync())
            {
                await using var tx = await connection.BeginTransactionAsync();
                using var traces = JobTraces.Begin("group commit", group.Select(w => (w.Job.Job.Id, w.TraceParent)));
                await JobSubmission.WriteAsync(tx, outbox, null, [.. group.Select(w => w.Job)], now, CancellationToken.None);
                await outbox.CommitAsync(tx);
            }
            GatewayMetrics.JobsSubmitted(group.Select(w => w.Job.Job.Spec.Kernel));
            Interlocked.Increment(ref _groups);
            Interlocked.Add(ref _jobs, group.Count);
            foreach (var waiting in group)
                waiting.Written.TrySetResult(now);
        }
        catch (Exception ex)
        {
            // Every job was checked before it queued, so a failed write is the database's: each request of the group
            // answers with it (a 500 problem, as when its own transaction failed), and none of the group was written.
            foreach (var waiting in group)
                waiting.Written.TrySetException(ex);
        }
    }
}

/// <summary>Configuration section <c>Submissions</c>.</summary>
public sealed class SubmissionOptions
{
    public const string SectionName = "Submissions";

    /// <summary>
    /// How long a group's writer waits for more single submissions before it writes a group that is not full. Zero
    /// (the default): it never waits; a group is what came in while the previous one was being committed.
    /// </summary>
    public TimeSpan GroupWait { get; set; } = TimeSpan.Zero;
}
