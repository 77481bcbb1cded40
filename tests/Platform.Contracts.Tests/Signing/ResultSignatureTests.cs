using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Signing;
using Platform.Contracts.Tests.Receipts;

namespace Platform.Contracts.Tests.Signing;

public sealed class ResultSignatureTests
{
    private static readonly JobId Job = JobId.From("job_test");
    private static readonly AttemptId Attempt = AttemptId.From("att_test");
    private static readonly Dictionary<string, Cid> Outputs = new() { ["labels"] = Cid.Compute("l"u8), ["centroids"] = Cid.Compute("c"u8) };

    [Fact]
    public void The_signed_text_names_job_attempt_and_outputs_in_name_order()
    {
        var text = Encoding.UTF8.GetString(ResultSignature.Payload(Job, Attempt, Outputs));
        Assert.Equal($"platform-result-v1\njob job_test\nattempt att_test\noutput centroids {Outputs["centroids"]}\noutput labels {Outputs["labels"]}\n", text);
    }

    [Fact]
    public void A_signature_verifies_with_its_key_and_with_nothing_else()
    {
        // Fixed keys and deterministic signatures (RFC 6979), so every run checks the same bytes.
        using var key = DeterministicEcdsa.FromSeed("result-signature-tests key");
        using var other = DeterministicEcdsa.FromSeed("result-signature-tests other");
        var publicKey = ResultSignature.ExportPublicKey(key);
        var signature = ResultSignature.Sign(key, Job, Attempt, Outputs);

        Assert.True(ResultSignature.Verify(publicKey, signature, Job, Attempt, Outputs));
        Assert.False(ResultSignature.Verify(ResultSignature.ExportPublicKey(other), signature, Job, Attempt, Outputs));
        Assert.False(ResultSignature.Verify(publicKey, signature, Job, AttemptId.From("att_other"), Outputs));
        Assert.False(ResultSignature.Verify(publicKey, signature, Job, Attempt, new Dictionary<string, Cid>(Outputs) { ["labels"] = Cid.Compute("x"u8) }));
        Assert.False(ResultSignature.Verify(publicKey, null, Job, Attempt, Outputs));
        Assert.False(ResultSignature.Verify(publicKey, "not base64!", Job, Attempt, Outputs));
        Assert.False(ResultSignature.Verify("not a key", signature, Job, Attempt, Outputs));
    }

    [Fact]
    public void Keys_on_other_curves_are_refused()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var signature = ResultSignature.Sign(p384, Job, Attempt, Outputs);
        Assert.Null(ResultSignature.ImportPublicKey(ResultSignature.ExportPublicKey(p384)));
        Assert.False(ResultSignature.Verify(ResultSignature.ExportPublicKey(p384), signature, Job, Attempt, Outputs));
    }

    private static readonly byte[] P256Oid = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

    [Fact]
    public void A_key_with_bytes_after_it_or_an_unknown_curve_is_refused_not_thrown()
    {
        using var key = DeterministicEcdsa.FromSeed("result-signature-tests key");
        var spki = key.ExportSubjectPublicKeyInfo();
        // The curve's OID (1.2.840.10045.3.1.7) with its first arc changed: .NET throws PlatformNotSupportedException for it.
        var unknownCurve = (byte[])spki.Clone();
        unknownCurve[spki.AsSpan().IndexOf(P256Oid)] ^= 0x01;

        Assert.Null(ResultSignature.ImportPublicKey(Convert.ToBase64String([.. spki, 0])));
        Assert.Null(ResultSignature.ImportPublicKey(Convert.ToBase64String(unknownCurve)));
    }
}
