namespace Platform.Contracts.Api;

/// <summary>The lifecycle's statuses in order; the terminal ones rank 10 and are never replaced.</summary>
public static class JobStatuses
{
    public const string Pending = "pending";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Rejected = "rejected";
    public const string Cancelled = "cancelled";

    private static readonly Dictionary<string, int> Ranks = new()
    {
        ["pending"] = 0,
        ["queued"] = 1,
        ["assigned"] = 2,
        ["running"] = 3,
        ["verifying"] = 4,
        ["completed"] = 10,
        ["failed"] = 10,
        ["cancelled"] = 10,
        ["rejected"] = 10,
    };

    public static IReadOnlyCollection<string> All => Ranks.Keys;

    public static int Rank(string status) => Ranks.TryGetValue(status, out var r) ? r : throw new ArgumentException($"unknown status {status}", nameof(status));

    /// <summary>The statuses a job never leaves.</summary>
    public static readonly IReadOnlySet<string> Terminal = new HashSet<string>(StringComparer.Ordinal) { Completed, Failed, Cancelled, Rejected };

    /// <summary>
    /// Whether a job in <paramref name="status"/> will never change again: false for null and for a status this
    /// version does not know (a newer gateway's), which a client should keep watching. <see cref="Rank"/> refuses those.
    /// </summary>
    public static bool IsTerminal(string? status) => status is not null && Terminal.Contains(status);
}
