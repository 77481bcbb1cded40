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

    /// <summary>The statuses a job never leaves. A client asks this set rather than <see cref="IsTerminal"/>, so that a status a newer gateway adds counts as not terminal instead of failing.</summary>
    public static readonly IReadOnlySet<string> Terminal = new HashSet<string>(StringComparer.Ordinal) { Completed, Failed, Cancelled, Rejected };

    /// <summary>Whether a job in <paramref name="status"/> will never change again; a status this version does not know is refused.</summary>
    public static bool IsTerminal(string status) => Rank(status) == 10;
}
