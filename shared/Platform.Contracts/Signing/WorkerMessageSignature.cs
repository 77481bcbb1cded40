using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Messages;

namespace Platform.Contracts.Signing;

/// <summary>
/// What a worker signs for each message it sends besides a result (<see cref="ResultSignature"/>), so the
/// scheduler acts only on messages from the key a worker registered. Like a result, the signed bytes are
/// UTF-8 text, one field a line, starting with the message kind and version:
/// <code>
/// platform-heartbeat-v1
/// worker wrk_...
/// at 2025-01-01T00:00:00.0000000Z
/// active 1
/// attempt att_...
/// </code>
/// Times are UTC in the round-trip ("O") format; a free-text field (a failure's detail) comes last, so it
/// cannot forge the lines after it. The signature is ECDSA P-256 over SHA-256, DER-encoded, base64, as for
/// results. The time is signed, and the consumers act only on newer times or on the attempt a message
/// names, so a replayed message changes nothing that it did not change the first time.
/// </summary>
public static class WorkerMessageSignature
{
    /// <summary>
    /// The announcement, signed with the key it announces (proof of possession): a worker can only register
    /// a key it holds. The capacity fields are not signed; the identity is, and so is the kernel revision when
    /// there is one (a last line <c>kernel-revision 1</c>), because it decides how the node's results are
    /// compared: nobody on the way may add it to an older node's announcement (its honest results would then have
    /// to match bit for bit) or strip it from a newer one's. Older nodes send none and sign the same lines as before.
    /// </summary>
    public static byte[] Payload(WorkerOnline m)
    {
        var text = Text("platform-worker-online-v1", m.WorkerId, m.OccurredAt).Append("operator ").Append(m.OperatorAccountId.Value).Append('\n')
            .Append("key ").Append(m.PublicKey).Append('\n');
        if (m.KernelRevision is { } revision)
            text.Append("kernel-revision ").Append(revision.ToString(CultureInfo.InvariantCulture)).Append('\n');
        return text.Utf8();
    }

    public static byte[] Payload(WorkerHeartbeat m)
    {
        var text = Text("platform-heartbeat-v1", m.WorkerId, m.OccurredAt).Append("active ").Append(m.ActiveAttempts.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var attempt in m.Attempts.Select(a => a.Value).Order(StringComparer.Ordinal))
            text.Append("attempt ").Append(attempt).Append('\n');
        return text.Utf8();
    }

    public static byte[] Payload(WorkerOffline m) => Text("platform-worker-offline-v1", m.WorkerId, m.OccurredAt).Utf8();

    public static byte[] Payload(AttemptStarted m) => Attempt("platform-attempt-started-v1", m.WorkerId, m.OccurredAt, m.JobId, m.AttemptId).Utf8();

    public static byte[] Payload(AttemptProgressed m) =>
        Attempt("platform-attempt-progressed-v1", m.WorkerId, m.OccurredAt, m.JobId, m.AttemptId)
            .Append("fraction ").Append(m.Fraction.ToString("R", CultureInfo.InvariantCulture)).Append('\n').Utf8();

    public static byte[] Payload(AttemptFailed m) =>
        Attempt("platform-attempt-failed-v1", m.WorkerId, m.OccurredAt, m.JobId, m.AttemptId)
            .Append("reason ").Append(m.Reason).Append('\n').Append("detail ").Append(m.Detail).Utf8();

    public static string Sign(ECDsa key, byte[] payload) =>
        Convert.ToBase64String(key.SignData(payload, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));

    /// <summary>False for a missing, malformed or wrong signature, and for a key that is not a P-256 public key.</summary>
    public static bool Verify(string? publicKey, string? signature, byte[] payload)
    {
        if (string.IsNullOrEmpty(publicKey) || string.IsNullOrEmpty(signature))
            return false;
        try
        {
            return VerifyingKeys.VerifyData(publicKey, payload, Convert.FromBase64String(signature));
        }
        catch (FormatException)
        {
            return false;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static StringBuilder Text(string kind, WorkerId worker, DateTimeOffset at) =>
        new StringBuilder(kind).Append('\n')
            .Append("worker ").Append(worker.Value).Append('\n')
            .Append("at ").Append(at.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)).Append('\n');

    private static StringBuilder Attempt(string kind, WorkerId worker, DateTimeOffset at, JobId job, AttemptId attempt) =>
        Text(kind, worker, at).Append("job ").Append(job.Value).Append('\n').Append("attempt ").Append(attempt.Value).Append('\n');

    private static byte[] Utf8(this StringBuilder text) => Encoding.UTF8.GetBytes(text.ToString());
}
