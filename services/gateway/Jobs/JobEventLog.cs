using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;

namespace Platform.Gateway.Jobs;

/// <summary>
/// Every status change of every job, by the scheduler's version number. Version 0 is the gateway's own
/// "pending" at submission; a rejection (decided by rewards, before the scheduler ever queues the job) sorts
/// after anything else.
/// </summary>
public static class JobEventLog
{
    public const int RejectedVersion = 1_000_000;

    /// <summary>One change of one job, as the log keeps it.</summary>
    public sealed record Entry(string JobId, int Version, string Status, string? AttemptId, string? WorkerId, string? AttemptStatus, string? Reason,
        string? Detail, DateTimeOffset OccurredAt);

    /// <summary>Appends the entries in one statement; one already in the log (a redelivery, or twice in the list) is kept as it was.</summary>
    public static Task AppendAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IReadOnlyList<Entry> entries, CancellationToken ct) =>
        entries.Count == 0 ? Task.CompletedTask : connection.ExecuteAsync(new CommandDefinition(
            """
            insert into job_events (job_id, version, status, attempt_id, worker_id, attempt_status, reason, detail, occurred_at)
            select * from unnest(@jobIds, @versions, @statuses, @attemptIds, @workerIds, @attemptStatuses, @reasons, @details, @occurredAts)
            on conflict (job_id, version) do nothing
            """,
            new
            {
                jobIds = entries.Select(e => e.JobId).ToArray(),
                versions = entries.Select(e => e.Version).ToArray(),
                statuses = entries.Select(e => e.Status).ToArray(),
                attemptIds = entries.Select(e => e.AttemptId).ToArray(),
                workerIds = entries.Select(e => e.WorkerId).ToArray(),
                attemptStatuses = entries.Select(e => e.AttemptStatus).ToArray(),
                reasons = entries.Select(e => e.Reason).ToArray(),
                details = entries.Select(e => e.Detail).ToArray(),
                occurredAts = entries.Select(e => e.OccurredAt).ToArray(),
            }, tx, cancellationToken: ct));

    /// <summary>Version 0, "pending", of each new job: one statement for a job array.</summary>
    public static Task AppendPendingAsync(NpgsqlTransaction tx, string[] jobIds, DateTimeOffset occurredAt, CancellationToken ct) =>
        tx.Connection!.ExecuteAsync(new CommandDefinition(
            """
            insert into job_events (job_id, version, status, occurred_at)
            select id, 0, 'pending', @occurredAt from unnest(@jobIds) as id
            on conflict (job_id, version) do nothing
            """, new { jobIds, occurredAt }, tx, cancellationToken: ct));

    /// <summary>A row of the log; <see cref="Seq"/> is its place in the whole log (the batch stream's event id).</summary>
    internal sealed class Row
    {
        public long Seq { get; init; }
        public string JobId { get; init; } = "";
        public int Version { get; init; }
        public string Status { get; init; } = "";
        public string? AttemptId { get; init; }
        public string? WorkerId { get; init; }
        public string? AttemptStatus { get; init; }
        public string? Reason { get; init; }
        public string? Detail { get; init; }
        public DateTime OccurredAt { get; init; }

        public JobStatusChange ToEvent() => new(JobId, Version, Status, AttemptId, WorkerId, AttemptStatus, Reason, Detail,
            new DateTimeOffset(DateTime.SpecifyKind(OccurredAt, DateTimeKind.Utc)), MessageOf(Status, Reason, Detail));
    }

    /// <summary>The columns of <see cref="Row"/>, from <c>job_events</c> as <c>e</c>.</summary>
    internal const string Columns = """
        e.seq as Seq, e.job_id as JobId, e.version as Version, e.status as Status, e.attempt_id as AttemptId, e.worker_id as WorkerId,
        e.attempt_status as AttemptStatus, e.reason as Reason, e.detail as Detail, e.occurred_at as OccurredAt
        """;

    /// <summary>
    /// The job's changes after <paramref name="afterVersion"/>, and its terminal change whatever its version: a client
    /// that resumes past the end learns that the job ended (and its stream ends) instead of waiting for changes that
    /// will never come.
    /// </summary>
    public static async Task<IReadOnlyList<JobStatusChange>> AfterAsync(NpgsqlConnection connection, string jobId, int afterVersion, CancellationToken ct) =>
        [.. (await connection.QueryAsync<Row>(new CommandDefinition(
            $"""
            select {Columns} from job_events e
            where e.job_id = @jobId and (e.version > @afterVersion or e.status in ('completed', 'failed', 'cancelled', 'rejected'))
            order by e.version
            """,
            new { jobId, afterVersion }, cancellationToken: ct))).Select(r => r.ToEvent())];

    // Terminal changes always get a sentence, even from a scheduler that sent no reason with a completion.
    private static string? MessageOf(string status, string? reason, string? detail) =>
        reason is not null ? JobReasons.Message(reason, detail)
        : status == JobStatuses.Completed ? JobReasons.Message(JobReasons.Accepted, detail)
        : JobStatuses.IsTerminal(status) ? JobReasons.Message(JobReasons.Unknown, detail)
        : null;
}
