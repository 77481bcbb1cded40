using System.Diagnostics.CodeAnalysis;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Contracts.Signing;

namespace Platform.Contracts.Receipts;

/// <summary>One thing a verification checked, and what it found.</summary>
public sealed record ReceiptCheck(string Name, bool Passed, string Detail);

/// <summary>Every check made of a receipt file; it is verified when there were checks and all of them passed.</summary>
public sealed record ReceiptVerification(IReadOnlyList<ReceiptCheck> Checks, SignedReceipt? Receipt)
{
    public bool Verified => Checks.Count > 0 && Checks.All(c => c.Passed);

    public IEnumerable<ReceiptCheck> Failures => Checks.Where(c => !c.Passed);
}

/// <summary>
/// Checks a receipt file offline, trusting nothing but the file (and the platform key, when the caller pins one):
/// it is in canonical form, the platform signed exactly this receipt, every accepted worker signed exactly these
/// outputs for this job and attempt, the totals add up, and (when given) local files have the outputs' CIDs.
/// What it cannot check is the computation itself: that is what replicas and spot checks are for.
/// </summary>
public static class ReceiptVerifier
{
    /// <param name="file">The receipt file's bytes, as downloaded.</param>
    /// <param name="pinnedPlatformKey">The platform key the caller trusts (SubjectPublicKeyInfo, base64); null uses the key in the file.</param>
    /// <param name="localOutputs">CIDs of local copies of outputs, by output name, to compare with the receipt's.</param>
    public static ReceiptVerification Verify(ReadOnlySpan<byte> file, string? pinnedPlatformKey = null, IReadOnlyDictionary<string, Cid>? localOutputs = null)
    {
        var checks = new List<ReceiptCheck>();
        void Check(string name, bool passed, string detail) => checks.Add(new ReceiptCheck(name, passed, detail));

        SignedReceipt signed;
        try
        {
            signed = ReceiptJson.Parse(file);
        }
        catch (JsonException e)
        {
            Check("format", false, $"not a platform receipt: {e.Message}");
            return new ReceiptVerification(checks, null);
        }
        var receipt = signed.Receipt;

        var canonical = ReceiptJson.Serialize(signed);
        var difference = file.CommonPrefixLength(canonical);
        Check("canonical", difference == file.Length && difference == canonical.Length,
            difference == file.Length && difference == canonical.Length
                ? "the file is in canonical form"
                : $"not in canonical form: the receipt was changed (first difference at byte {difference})");
        Check("format", receipt.Format == JobReceipt.FormatV1,
            receipt.Format == JobReceipt.FormatV1 ? $"format {receipt.Format}" : $"unknown format '{receipt.Format}' (this verifier reads {JobReceipt.FormatV1})");

        CheckPlatformSignature(signed, pinnedPlatformKey, Check);

        var jobIdValid = JobId.TryParse(receipt.JobId, null, out var jobId);
        Check("job", jobIdValid && receipt.Status == "completed",
            !jobIdValid ? $"'{receipt.JobId}' is not a job id" : receipt.Status == "completed" ? $"job {receipt.JobId} completed" : $"job {receipt.JobId} is {receipt.Status}, not completed");

        CheckAttempts(receipt, jobIdValid ? jobId : null, Check);

        var energy = ReceiptEnergy.Of(receipt.Attempts);
        Check("totals", energy == receipt.Energy,
            energy == receipt.Energy
                ? $"{Describe(energy.Gflop)} GFLOP, {(energy.Joules is { } j ? $"{Describe(j)} J" + (energy.Estimated ? " (estimated)" : " (measured)") : "energy not reported")}"
                : $"the totals do not add up: the attempts give {Describe(energy.Gflop)} GFLOP and {Describe(energy.Joules)} J ({Describe(energy.JoulesPerGflop)} J/GFLOP, estimated {energy.Estimated}), the receipt says {Describe(receipt.Energy.Gflop)} GFLOP and {Describe(receipt.Energy.Joules)} J ({Describe(receipt.Energy.JoulesPerGflop)} J/GFLOP, estimated {receipt.Energy.Estimated})");
        Check("cost", receipt.Cost >= 0 && (receipt.MaxPrice is null || receipt.Cost <= receipt.MaxPrice),
            receipt.Cost < 0 ? $"negative cost {receipt.Cost}" : receipt.MaxPrice is { } max && receipt.Cost > max ? $"cost {receipt.Cost} is above the job's maxPrice {max}" : $"cost {receipt.Cost} credits");

        foreach (var (name, cid) in localOutputs ?? new Dictionary<string, Cid>())
        {
            Check($"output {name}", receipt.Outputs.TryGetValue(name, out var expected) && expected == cid,
                !receipt.Outputs.TryGetValue(name, out expected) ? $"the receipt has no output '{name}' (it has {string.Join(", ", receipt.Outputs.Keys)})"
                : expected == cid ? $"local file matches {cid}" : $"local file is {cid}, the receipt says {expected}");
        }
        return new ReceiptVerification(checks, signed);
    }

    private static void CheckPlatformSignature(SignedReceipt signed, string? pinned, Action<string, bool, string> check)
    {
        if (!IsCanonicalBase64(signed.PlatformKey) || !IsCanonicalSignature(signed.PlatformSignature))
        {
            check("platform signature", false, "the platform key or signature is not canonical (base64 of a DER signature and nothing else)");
            return;
        }
        var keyText = signed.PlatformKey;
        string whose;
        if (pinned is not null)
        {
            if (!IsCanonicalBase64(pinned) || pinned != signed.PlatformKey)
            {
                check("platform key", false, $"the receipt names platform key {Fingerprint(signed.PlatformKey)}, not the pinned key {Fingerprint(pinned)}");
                return;
            }
            keyText = pinned;
            whose = $"the pinned platform key {Fingerprint(pinned)}";
        }
        else
        {
            whose = $"platform key {Fingerprint(keyText)} as named in the receipt (pin it with --platform-key; the gateway publishes it at GET /v1/receipts/key)";
        }
        using var key = ResultSignature.ImportPublicKey(keyText);
        var valid = key is not null && key.VerifyData(ReceiptJson.ReceiptBytes(signed.Receipt), Convert.FromBase64String(signed.PlatformSignature),
            HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        check("platform signature", valid, valid ? $"signed by {whose}" : key is null ? "the platform key is not a P-256 public key" : $"the signature does not match the receipt under {whose}");
    }

    private static void CheckAttempts(JobReceipt receipt, JobId? jobId, Action<string, bool, string> check)
    {
        if (receipt.Attempts.Count == 0)
        {
            check("attempts", false, "the receipt names no accepted attempt");
            return;
        }
        var paid = receipt.Attempts.Count(a => !a.SpotCheck);
        var distinctWorkers = receipt.Attempts.Select(a => a.WorkerId).Distinct(StringComparer.Ordinal).Count() == receipt.Attempts.Count;
        var distinctAttempts = receipt.Attempts.Select(a => a.AttemptId).Distinct(StringComparer.Ordinal).Count() == receipt.Attempts.Count;
        check("replicas", paid == receipt.Replicas && distinctWorkers && distinctAttempts,
            !distinctWorkers || !distinctAttempts ? "an attempt or worker is named twice"
            : paid == receipt.Replicas ? $"{paid} agreeing result(s) for {receipt.Replicas} replica(s)" + (receipt.Attempts.Count > paid ? $" and {receipt.Attempts.Count - paid} spot check(s)" : "")
            : $"{paid} paid result(s) for {receipt.Replicas} replica(s)");
        foreach (var a in receipt.Attempts)
        {
            var name = $"worker {a.WorkerId}";
            if (jobId is not { } job || !AttemptId.TryParse(a.AttemptId, null, out var attempt) || !WorkerId.TryParse(a.WorkerId, null, out _))
            {
                check(name, false, $"attempt '{a.AttemptId}' or worker '{a.WorkerId}' is not a valid id");
                continue;
            }
            if (!IsCanonicalBase64(a.WorkerPublicKey) || !IsCanonicalSignature(a.Signature))
            {
                check(name, false, $"attempt {a.AttemptId}: the key or signature is not canonical (base64 of a DER signature and nothing else)");
                continue;
            }
            var valid = ResultSignature.Verify(a.WorkerPublicKey, a.Signature, job, attempt, receipt.Outputs);
            check(name, valid, valid
                ? $"key {Fingerprint(a.WorkerPublicKey)} signed these outputs for attempt {a.AttemptId}"
                : $"attempt {a.AttemptId}: the signature is not key {Fingerprint(a.WorkerPublicKey)}'s over this job, attempt and these outputs");
        }
    }

    /// <summary>
    /// True when decoding and encoding again gives the same text: base64 allows whitespace and non-zero padding
    /// bits, which would let a changed character decode to the same bytes.
    /// </summary>
    public static bool IsCanonicalBase64([NotNullWhen(true)] string? text)
    {
        if (string.IsNullOrEmpty(text))
            return false;
        try
        {
            return Convert.ToBase64String(Convert.FromBase64String(text)) == text;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// True for canonical base64 of exactly one DER ECDSA signature: the verifier of .NET reads a DER signature and
    /// ignores bytes after it, so without this an appended byte would leave the signature valid.
    /// </summary>
    public static bool IsCanonicalSignature([NotNullWhen(true)] string? text)
    {
        if (!IsCanonicalBase64(text))
            return false;
        try
        {
            var reader = new AsnReader(Convert.FromBase64String(text), AsnEncodingRules.DER);
            var sequence = reader.ReadSequence();
            sequence.ReadInteger();
            sequence.ReadInteger();
            sequence.ThrowIfNotEmpty();
            reader.ThrowIfNotEmpty();
            return true;
        }
        catch (AsnContentException)
        {
            return false;
        }
    }

    /// <summary>A short, stable name for a key: the first 16 hex digits of the SHA-256 of its SubjectPublicKeyInfo.</summary>
    public static string Fingerprint(string publicKey)
    {
        try
        {
            return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Convert.FromBase64String(publicKey)))[..16];
        }
        catch (FormatException)
        {
            return "(not base64)";
        }
    }

    private static string Describe(double? value) => value is { } v ? v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture) : "none";
}
