namespace Platform.Gateway.Jobs;

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

    public static bool IsTerminal(string status) => Rank(status) == 10;
}
