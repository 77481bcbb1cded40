using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Signing;
using Platform.Contracts.Tests.Receipts;

namespace Platform.Contracts.Tests.Signing;

/// <summary>The cache of imported node keys must answer exactly as importing each time would, from many threads.</summary>
public sealed class VerifyingKeysTests
{
    private static byte[] Sign(ECDsa key, byte[] payload) => key.SignData(payload, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);

    [Fact]
    public async Task Many_threads_verify_with_one_key_and_each_gets_its_own_answer()
    {
        using var key = DeterministicEcdsa.FromSeed("verifying-keys-tests key");
        var publicKey = ResultSignature.ExportPublicKey(key);
        // Half the checks are of a payload that was not signed: a shared instance in a broken state would let one pass.
        var checks = Enumerable.Range(0, 512).Select(i => Encoding.UTF8.GetBytes($"payload {i}")).ToArray();
        var signatures = checks.Select((p, i) => i % 2 == 0 ? Sign(key, p) : Sign(key, Encoding.UTF8.GetBytes($"other {i}"))).ToArray();

        var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(t => Task.Run(() =>
            Enumerable.Range(0, checks.Length).Where(i => i % 64 == t || i % 7 == t % 7)
                .Select(i => (i, VerifyingKeys.VerifyData(publicKey, checks[i], signatures[i]))).ToArray())));

        var all = answers.SelectMany(a => a).ToArray();
        Assert.True(all.Length > checks.Length);
        Assert.All(all, a => Assert.Equal(a.i % 2 == 0, a.Item2));
    }

    [Fact]
    public void A_cached_key_does_not_answer_for_another_key_text()
    {
        using var key = DeterministicEcdsa.FromSeed("verifying-keys-tests key");
        using var other = DeterministicEcdsa.FromSeed("verifying-keys-tests other");
        var payload = "platform-result-v1\n"u8.ToArray();
        var signature = Sign(key, payload);
        var publicKey = ResultSignature.ExportPublicKey(key);

        // Cached by the first check, then asked under other texts: the other node's key, the same key with a byte
        // after it (refused on import), and a key on another curve.
        Assert.True(VerifyingKeys.VerifyData(publicKey, payload, signature));
        Assert.True(VerifyingKeys.VerifyData(publicKey, payload, signature));
        Assert.False(VerifyingKeys.VerifyData(ResultSignature.ExportPublicKey(other), payload, signature));
        Assert.False(VerifyingKeys.VerifyData(Convert.ToBase64String([.. key.ExportSubjectPublicKeyInfo(), 0]), payload, signature));
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.False(VerifyingKeys.VerifyData(ResultSignature.ExportPublicKey(p384), payload, Sign(p384, payload)));
        Assert.False(VerifyingKeys.VerifyData("not a key", payload, signature));
        Assert.True(VerifyingKeys.VerifyData(publicKey, payload, signature));
    }
}
