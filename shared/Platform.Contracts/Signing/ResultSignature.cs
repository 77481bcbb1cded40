using System.Security.Cryptography;
using System.Text;

namespace Platform.Contracts.Signing;

/// <summary>
/// What a worker signs for each result, and how anyone checks it. The signed bytes are UTF-8 text that a
/// person (or openssl) can rebuild from a job's record:
/// <code>
/// platform-result-v1
/// job job_...
/// attempt att_...
/// output c bafkrei...
/// </code>
/// with one output line per output, ordered by name (ordinal). The signature is ECDSA P-256 over SHA-256,
/// DER-encoded (RFC 3279, what <c>openssl dgst -sha256 -verify</c> reads), base64; the public key is the
/// SubjectPublicKeyInfo, base64.
/// </summary>
public static class ResultSignature
{
    public static byte[] Payload(JobId jobId, AttemptId attemptId, IReadOnlyDictionary<string, Cid> outputs)
    {
        var text = new StringBuilder("platform-result-v1\n")
            .Append("job ").Append(jobId.Value).Append('\n')
            .Append("attempt ").Append(attemptId.Value).Append('\n');
        foreach (var (name, cid) in outputs.OrderBy(o => o.Key, StringComparer.Ordinal))
            text.Append("output ").Append(name).Append(' ').Append(cid.ToString()).Append('\n');
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    public static string Sign(ECDsa key, JobId jobId, AttemptId attemptId, IReadOnlyDictionary<string, Cid> outputs) =>
        Convert.ToBase64String(key.SignData(Payload(jobId, attemptId, outputs), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));

    /// <summary>False for a missing, malformed or wrong signature, and for a key that is not a P-256 public key.</summary>
    public static bool Verify(string? publicKey, string? signature, JobId jobId, AttemptId attemptId, IReadOnlyDictionary<string, Cid> outputs)
    {
        if (string.IsNullOrEmpty(publicKey) || string.IsNullOrEmpty(signature))
            return false;
        try
        {
            return VerifyingKeys.VerifyData(publicKey, Payload(jobId, attemptId, outputs), Convert.FromBase64String(signature));
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

    /// <summary>The P-256 key in a base64 SubjectPublicKeyInfo, or null when it is anything else (trailing bytes included).</summary>
    public static ECDsa? ImportPublicKey(string publicKey)
    {
        var key = ECDsa.Create();
        try
        {
            // Bytes after the key are refused: they would let two texts name one key.
            var bytes = Convert.FromBase64String(publicKey);
            key.ImportSubjectPublicKeyInfo(bytes, out var read);
            if (read == bytes.Length && key.KeySize == 256 && key.ExportParameters(false).Curve.Oid.Value == ECCurve.NamedCurves.nistP256.Oid.Value)
                return key;
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException or PlatformNotSupportedException)
        {
        }
        key.Dispose();
        return null;
    }

    public static string ExportPublicKey(ECDsa key) => Convert.ToBase64String(key.ExportSubjectPublicKeyInfo());
}
