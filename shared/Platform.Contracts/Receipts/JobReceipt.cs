using Platform.Contracts.Messages;

namespace Platform.Contracts.Receipts;

/// <summary>
/// A receipt file: the receipt, the platform's public key and its signature over the receipt's exact bytes (see
/// <see cref="ReceiptJson"/>). The property order here is the order in the file; never reorder.
/// </summary>
public sealed record SignedReceipt
{
    public required JobReceipt Receipt { get; init; }
    /// <summary>The platform's receipt key: P-256 SubjectPublicKeyInfo, base64.</summary>
    public required string PlatformKey { get; init; }
    /// <summary>ECDSA P-256 over SHA-256 of <see cref="ReceiptJson.ReceiptBytes"/>, DER, base64.</summary>
    public required string PlatformSignature { get; init; }
}

/// <summary>What the platform attests about one completed job. Every map is ordered by key (ordinal).</summary>
public sealed record JobReceipt
{
    public const string FormatV1 = "platform-receipt-v1";

    public required string Format { get; init; }
    public required DateTimeOffset IssuedAt { get; init; }
    public required string JobId { get; init; }
    public required string ClientAccountId { get; init; }
    public required string Kernel { get; init; }
    public required string KernelVersion { get; init; }
    public required IReadOnlyDictionary<string, Cid> Inputs { get; init; }
    public required IReadOnlyDictionary<string, string> Params { get; init; }
    public required int Replicas { get; init; }
    public required ReceiptRequirements Requirements { get; init; }
    public required decimal? MaxPrice { get; init; }
    public required string Status { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset CompletedAt { get; init; }
    public required IReadOnlyDictionary<string, Cid> Outputs { get; init; }
    /// <summary>Every accepted attempt, in the order the scheduler accepted them.</summary>
    public required IReadOnlyList<ReceiptAttempt> Attempts { get; init; }
    public required ReceiptEnergy Energy { get; init; }
    /// <summary>Credits the client was charged.</summary>
    public required decimal Cost { get; init; }
}

public sealed record ReceiptRequirements
{
    public required string Device { get; init; }
    public required long MinMemoryMb { get; init; }
    public required string? Region { get; init; }
}

/// <summary>One accepted attempt: who computed the outputs, their signature over them, and what it took.</summary>
public sealed record ReceiptAttempt
{
    public required string AttemptId { get; init; }
    public required string WorkerId { get; init; }
    /// <summary>The key the worker registered (P-256 SubjectPublicKeyInfo, base64), which the scheduler checked the result against.</summary>
    public required string WorkerPublicKey { get; init; }
    /// <summary>The worker's <see cref="Signing.ResultSignature"/> over (job, attempt, outputs).</summary>
    public required string Signature { get; init; }
    /// <summary>A verification attempt the client did not pay for.</summary>
    public required bool SpotCheck { get; init; }
    public required string Device { get; init; }
    public required double DurationMs { get; init; }
    public required double Gflop { get; init; }
    public required double? Joules { get; init; }
    public required bool JoulesEstimated { get; init; }

    /// <summary>The attempt's figures as the scheduler reported them.</summary>
    public static ReceiptAttempt From(string attemptId, string workerId, string publicKey, string signature, bool spotCheck, AttemptMetrics metrics) => new()
    {
        AttemptId = attemptId,
        WorkerId = workerId,
        WorkerPublicKey = publicKey,
        Signature = signature,
        SpotCheck = spotCheck,
        Device = metrics.Device,
        DurationMs = metrics.DurationMs,
        Gflop = metrics.Gflop,
        Joules = metrics.Joules,
        JoulesEstimated = metrics.JoulesEstimated,
    };
}

/// <summary>Totals over the accepted attempts, as <see cref="Of"/> computes them.</summary>
public sealed record ReceiptEnergy
{
    public required double Gflop { get; init; }
    /// <summary>Null when any attempt did not report its energy.</summary>
    public required double? Joules { get; init; }
    public required double? JoulesPerGflop { get; init; }
    /// <summary>True when any attempt's joules were estimated rather than measured.</summary>
    public required bool Estimated { get; init; }

    /// <summary>The totals of <paramref name="attempts"/>, summed in order: the issuer and the verifier both call this, so they agree to the bit.</summary>
    public static ReceiptEnergy Of(IReadOnlyList<ReceiptAttempt> attempts)
    {
        double gflop = 0, joules = 0;
        var measured = true;
        foreach (var a in attempts)
        {
            gflop += a.Gflop;
            if (a.Joules is { } j)
                joules += j;
            else
                measured = false;
        }
        double? total = measured && attempts.Count > 0 ? joules : null;
        return new ReceiptEnergy
        {
            Gflop = gflop,
            Joules = total,
            JoulesPerGflop = total is { } t && gflop > 0 ? t / gflop : null,
            Estimated = attempts.Any(a => a.JoulesEstimated),
        };
    }
}
