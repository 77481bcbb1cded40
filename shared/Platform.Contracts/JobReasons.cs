namespace Platform.Contracts;

/// <summary>
/// Why a job or an attempt ended, by code: every place that ends one uses a code from here, so every code a
/// client can see has a plain sentence and, where the client can do something about it, a next step. The
/// specifics (which worker, attempt n of m, balance against price) travel as the detail beside the code;
/// <see cref="Message"/> puts the two together.
/// </summary>
public static class JobReasons
{
    /// <param name="Code">Machine-readable, snake_case, stable.</param>
    /// <param name="Ends">What it ends: "completed", "failed", "rejected" or "cancelled" for a job, "attempt" for an attempt only.</param>
    /// <param name="Sentence">What happened, in one sentence a client can read without knowing the platform.</param>
    /// <param name="NextStep">What the client can do about it, when there is something to do.</param>
    public sealed record Reason(string Code, string Ends, string Sentence, string? NextStep = null);

    // Completed.
    public const string Accepted = "accepted";
    public const string Verified = "verified";
    public const string SpotChecked = "spot_checked";

    // Failed, cancelled, rejected; some also end single attempts.
    public const string AttemptsExhausted = "attempts_exhausted";
    public const string DeadlineExceeded = "deadline_exceeded";
    public const string VerificationFailed = "verification_failed";
    public const string InputInvalid = "input_invalid";
    public const string InputMissing = "input_missing";
    public const string InputCorrupt = "input_corrupt";
    public const string InputTooLarge = "input_too_large";
    public const string InsufficientCredits = "insufficient_credits";
    public const string MaxPriceExceeded = "max_price_exceeded";
    public const string CancelledByClient = "cancelled_by_client";

    // Attempts only: the job goes to another worker (or fails with attempts_exhausted).
    public const string WorkerLost = "worker_lost";
    public const string LeaseExpired = "lease_expired";
    public const string WorkerError = "worker_error";
    public const string SignatureInvalid = "signature_invalid";
    public const string AttemptOverdue = "attempt_overdue";
    public const string InputClaimDisproved = "input_claim_disproved";
    public const string InputClaimUnchecked = "input_claim_unchecked";
    public const string StorageUnreachable = "storage_unreachable";

    /// <summary>A record from before every ending had a reason.</summary>
    public const string Unknown = "unknown";

    public static IReadOnlyList<Reason> All { get; } =
    [
        new(Accepted, "completed", "The job completed: its worker's signed result was accepted."),
        new(Verified, "completed", "The job completed: replicas run by different operators' workers agreed on the result."),
        new(SpotChecked, "completed", "The job completed: a second operator's worker ran it again as a spot check and agreed."),
        new(AttemptsExhausted, "failed", "The job failed on every attempt it was allowed, so it was given up and its credits refunded.",
            "Read each attempt's reason; if they are worker faults, submit the job again."),
        new(DeadlineExceeded, "failed", "The job did not finish within the network's deadline after it was submitted, so it was given up and its credits refunded.",
            "Check its requirements (region, device, memory) against the nodes online (GET /v1/workers), or make it smaller, and submit it again."),
        new(VerificationFailed, "failed", "The results of different operators' workers did not agree, so none was accepted and the credits were refunded.",
            "A kernel that is not deterministic enough for verification: submit it with replicas 1."),
        new(InputInvalid, "failed", "The job's inputs or parameters do not fit its kernel, so every worker would fail it the same way; the credits were refunded.",
            "Check the inputs' shapes and dtypes against the kernel (platform kernels)."),
        new(InputMissing, "failed", "An input of the job is not stored on the network, so no worker can fetch it; the credits were refunded.",
            "Upload the input again (platform blobs put) and submit the job with its CID."),
        new(InputCorrupt, "failed", "An input arrived with bytes that do not match its CID; the credits were refunded.",
            "Upload the input again and submit the job with its CID."),
        new(InputTooLarge, "attempt", "The job's inputs and outputs do not fit in this worker's memory, so it was given to another worker.",
            "Ask for more memory in requirements.minMemoryMb, or split the job."),
        new(InsufficientCredits, "rejected", "The account does not hold enough credits for the job's price, so it was not started.",
            "Buy or earn credits, or lower the price with a smaller job."),
        new(MaxPriceExceeded, "rejected", "The job's estimated price is above the maxPrice it was submitted with, so it was not started.",
            "Raise maxPrice or make the job smaller."),
        new(CancelledByClient, "cancelled", "The client cancelled the job; its credits were refunded."),
        new(WorkerLost, "attempt", "The worker running the job stopped sending heartbeats for longer than the grace period, so the job was given to another worker."),
        new(LeaseExpired, "attempt", "The worker kept sending heartbeats but stopped renewing this attempt's lease for longer than the grace period, so the job was given to another worker."),
        new(WorkerError, "attempt", "The worker failed on its own side (not because of the job), so the job was given to another worker."),
        new(SignatureInvalid, "attempt", "The worker's result was not signed with the key it registered, so it was refused and the job given to another worker."),
        new(AttemptOverdue, "attempt", "The worker kept the job far longer than its size at the worker's measured speed allows, so it was given to another worker."),
        new(InputClaimDisproved, "attempt", "The worker said the job's inputs were unusable, but the network read them from storage and found them fit for the kernel, so the job was given to another worker."),
        new(InputClaimUnchecked, "attempt", "The worker said the job's inputs were unusable and the network could not read them from storage to check, so the job was given to another worker rather than failed on one worker's word."),
        new(StorageUnreachable, "attempt", "The worker could not read the job's inputs or store its outputs through the gateway, retrying for its whole retry window, so the job was given to another worker."),
        new(Unknown, "failed", "The job ended before the platform recorded reasons."),
    ];

    private static readonly Dictionary<string, Reason> ByCode = All.ToDictionary(r => r.Code, StringComparer.Ordinal);

    /// <summary>The catalogue entry, or null for a code this version does not know.</summary>
    public static Reason? Find(string? code) => code is not null && ByCode.TryGetValue(code, out var reason) ? reason : null;

    /// <summary>Whether a job status is final.</summary>
    public static bool IsTerminal(string status) => status is "completed" or "failed" or "rejected" or "cancelled";

    /// <summary>
    /// The human sentence for <paramref name="code"/> with <paramref name="detail"/>: a detail the platform wrote as
    /// a whole sentence (it ends with a full stop) is the message; a short technical detail (as workers send) is
    /// added to the catalogue's sentence. The next step, if any, follows.
    /// </summary>
    public static string Message(string code, string? detail)
    {
        var reason = Find(code);
        var sentence = reason?.Sentence ?? $"The job ended ({code}).";
        var text = string.IsNullOrWhiteSpace(detail) ? sentence
            : IsSentence(detail) ? detail.Trim()
            : $"{sentence[..^1]}: {detail.Trim()}.";
        return reason?.NextStep is { } next && !text.Contains(next, StringComparison.Ordinal) ? $"{text} {next}" : text;
    }

    private static bool IsSentence(string detail) => detail.TrimEnd().EndsWith('.') && char.IsUpper(detail.TrimStart()[0]);

    /// <summary>"5 s", "1.5 s", "2 min": a duration as a message shows it.</summary>
    public static string Duration(TimeSpan duration) =>
        duration >= TimeSpan.FromMinutes(2) && duration.Seconds == 0
            ? $"{duration.TotalMinutes.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)} min"
            : $"{duration.TotalSeconds.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)} s";
}
