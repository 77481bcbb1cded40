using System.Security.Cryptography;
using System.Text;

namespace Platform.Contracts.Tests.Receipts;

/// <summary>The test signer is RFC 6979: it reproduces the RFC's P-256 / SHA-256 vectors (appendix A.2.5) exactly.</summary>
public sealed class DeterministicEcdsaTests
{
    private const string PrivateKey = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";

    [Theory]
    [InlineData("sample", "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716", "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")]
    [InlineData("test", "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367", "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083")]
    public void Signs_the_RFC_6979_vectors(string message, string r, string s)
    {
        using var key = new DeterministicEcdsa(Convert.FromHexString(PrivateKey));

        var signature = key.SignData(Encoding.UTF8.GetBytes(message), HashAlgorithmName.SHA256);

        Assert.Equal(r + s, Convert.ToHexString(signature));
        var q = key.ExportParameters(false).Q;
        Assert.Equal("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6", Convert.ToHexString(q.X!));
        Assert.Equal("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299", Convert.ToHexString(q.Y!));
        // And the platform's own ECDsa, from the public key alone, accepts it in the DER form receipts use.
        using var verifier = ECDsa.Create();
        verifier.ImportSubjectPublicKeyInfo(key.ExportSubjectPublicKeyInfo(), out _);
        Assert.True(verifier.VerifyData(Encoding.UTF8.GetBytes(message),
            key.SignData(Encoding.UTF8.GetBytes(message), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence),
            HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
    }

    [Fact]
    public void The_same_seed_is_the_same_key_and_signature()
    {
        using var one = DeterministicEcdsa.FromSeed("seed");
        using var two = DeterministicEcdsa.FromSeed("seed");
        using var other = DeterministicEcdsa.FromSeed("other seed");
        var data = "platform-result-v1\n"u8.ToArray();

        Assert.Equal(one.ExportSubjectPublicKeyInfo(), two.ExportSubjectPublicKeyInfo());
        Assert.NotEqual(one.ExportSubjectPublicKeyInfo(), other.ExportSubjectPublicKeyInfo());
        Assert.Equal(one.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence),
            two.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
    }
}
