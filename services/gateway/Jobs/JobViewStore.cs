using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;

namespace Platform.Gateway.Jobs;

/// <summary>Reads the job read model into the API's shape.</summary>
public static class JobViewStore
{
    private sealed record JobRow(string Id, string Kernel, string Spec, string Status, string? Outputs, decimal? Cost,
        string? ErrorReason, string? ErrorDetail, DateTime CreatedAt, DateTime? CompletedAt);

    private sealed record AttemptRow(string JobId, string AttemptId, string WorkerId, string Status, string? Signature, float? Progress, string? Reason, string? Detail,
        string? Metrics)
    {
        public AttemptMetrics? Measured => Metrics is null ? null : JsonSerializer.Deserialize<AttemptMetrics>(Metrics, PlatformJson.Options);
    }

    private const string Columns = """
        id, kernel, spec::text as Spec, status, outputs::text as Outputs, cost, error_reason as ErrorReason,
        error_detail as ErrorDetail, created_at as CreatedAt, completed_at as CompletedAt
        """;

    /// <summary>The job, or null when it does not exist or (with <paramref name="owner"/>) belongs to someone else.</summary>
    public static async Task<JobView?> LoadAsync(NpgsqlDataSource db, string id, CancellationToken ct, string? owner = null)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<JobRow>(new CommandDefinition(
            $"select {Columns} from jobs where id = @id and (@owner::text is null or client_account_id = @owner)", new { id, owner }, cancellationToken: ct));
        if (row is null)
            return null;
        var attempts = await AttemptsAsync(connection, [id], ct);
        return ToView(row, attempts);
    }

    public static async Task<IReadOnlyList<JobView>> ListAsync(NpgsqlDataSource db, string owner, string? status, int limit, (DateTimeOffset At, string Id)? after, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = (await connection.QueryAsync<JobRow>(new CommandDefinition(
            $"""
            select {Columns} from jobs
            where client_account_id = @owner and (@status::text is null or status = @status)
              and (@afterAt::timestamptz is null or (created_at, id) < (@afterAt, @afterId))
            order by created_at desc, id desc limit @limit
            """,
            new { owner, status, afterAt = after?.At, afterId = after?.Id, limit }, cancellationToken: ct))).ToList();
        var attempts = await AttemptsAsync(connection, rows.Select(r => r.Id).ToArray(), ct);
        return rows.Select(r => ToView(r, attempts)).ToList();
    }

    private static async Task<ILookup<string, AttemptRow>> AttemptsAsync(NpgsqlConnection connection, string[] jobIds, CancellationToken ct) =>
        (await connection.QueryAsync<AttemptRow>(new CommandDefinition(
            """
            select job_id as JobId, attempt_id as AttemptId, worker_id as WorkerId, status, signature, progress, reason, detail, metrics::text as Metrics
            from job_attempts where job_id = any(@jobIds) order by updated_at
            """,
            new { jobIds }, cancellationToken: ct))).ToLookup(a => a.JobId);

    private static readonly ILookup<string, AttemptRow> NoAttempts = Array.Empty<AttemptRow>().ToLookup(a => a.JobId);

    /// <summary>
    /// The view of a job the caller has just written and committed (status pending, no attempts yet): what
    /// <see cref="LoadAsync"/> would read back, without a second round trip per submission.
    /// </summary>
    public static JobView Submitted(JobId id, JobSpec spec, DateTimeOffset createdAt) =>
        ToView(new JobRow(id.Value, spec.Kernel, "", JobStatuses.Pending, null, null, null, null, createdAt.UtcDateTime, null), spec, NoAttempts);

    private static JobView ToView(JobRow row, ILookup<string, AttemptRow> attempts) =>
        ToView(row, JsonSerializer.Deserialize<JobSpec>(row.Spec, PlatformJson.Options)!, attempts);

    private static JobView ToView(JobRow row, JobSpec spec, ILookup<string, AttemptRow> attempts)
    {
        return new JobView
        {
            Id = row.Id,
            Kernel = row.Kernel,
            Status = row.Status,
            Inputs = spec.Inputs.ToDictionary(i => i.Key, i => i.Value.Value),
            Params = spec.Params,
            Outputs = row.Outputs is null ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(row.Outputs, PlatformJson.Options),
            Cost = row.Cost,
            Progress = row.Status == "completed" ? 1 : attempts[row.Id].Where(a => a.Status is "assigned" or "running").Select(a => a.Progress).LastOrDefault(),
            Attempts = attempts[row.Id].Select(a => new AttemptView(a.AttemptId, a.WorkerId, a.Status, a.Signature, a.Progress,
                a.Reason is null ? null : StatusReason.Of(a.Reason, a.Detail),
                a.Measured?.Joules, a.Measured is { Joules: not null } m ? m.JoulesEstimated : null)).ToList(),
            Energy = Energy(attempts[row.Id].Where(a => a.Status == "accepted").Select(a => a.Measured).OfType<AttemptMetrics>().ToList()),
            CreatedAt = new DateTimeOffset(row.CreatedAt, TimeSpan.Zero),
            CompletedAt = row.CompletedAt is { } done ? new DateTimeOffset(done, TimeSpan.Zero) : null,
            StatusReason = !JobStatuses.IsTerminal(row.Status) ? null
                : StatusReason.Of(row.ErrorReason ?? (row.Status == JobStatuses.Completed ? JobReasons.Accepted : JobReasons.Unknown), row.ErrorDetail),
            Error = row.ErrorReason is null || row.Status == JobStatuses.Completed ? null : new JobError(row.ErrorReason, row.ErrorDetail ?? ""),
        };
    }

    /// <summary>What the job's accepted attempts used, replicas and spot checks included; null until one is accepted with a reading.</summary>
    private static JobEnergy? Energy(List<AttemptMetrics> accepted)
    {
        var read = accepted.Where(m => m.Joules is not null).ToList();
        if (read.Count == 0)
            return null;
        var joules = read.Sum(m => m.Joules!.Value);
        var gflop = read.Sum(m => m.Gflop);
        return new JobEnergy(joules, gflop, gflop > 0 ? joules / gflop : null, read.Any(m => m.JoulesEstimated));
    }
}
