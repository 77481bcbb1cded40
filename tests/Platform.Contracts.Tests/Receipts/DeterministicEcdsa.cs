using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace Platform.Contracts.Tests.Receipts;

/// <summary>
/// An ECDSA P-256 key made from a seed that signs deterministically (the nonce k of RFC 6979 §3.2, HMAC-SHA256),
/// so a test's keys and signatures are the same bytes on every run. .NET's own ECDsa draws a new k per signature,
/// and a signature's DER length (69 to 72 bytes) and so its base64 padding would change from run to run.
/// Verification and key export are the platform's ordinary ECDsa; only the signing is done here.
/// </summary>
internal sealed class DeterministicEcdsa : ECDsa
{
    private static readonly BigInteger N = BigInteger.Parse("0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", NumberStyles.HexNumber);

    private readonly ECDsa _key;
    private readonly BigInteger _d;

    /// <param name="privateKey">The private scalar d, 32 bytes big-endian, 1 &lt;= d &lt; n.</param>
    public DeterministicEcdsa(byte[] privateKey)
    {
        _d = new BigInteger(privateKey, isUnsigned: true, isBigEndian: true);
        if (_d < 1 || _d >= N)
            throw new ArgumentException("d must be in [1, n)", nameof(privateKey));
        _key = PointOf(privateKey);
        KeySizeValue = 256;
        LegalKeySizesValue = [new KeySizes(256, 256, 0)];
    }

    /// <summary>A key whose d is SHA-256 of the seed text, reduced into [1, n).</summary>
    public static DeterministicEcdsa FromSeed(string seed)
    {
        var d = (new BigInteger(SHA256.HashData(Encoding.UTF8.GetBytes(seed)), isUnsigned: true, isBigEndian: true) % (N - 1)) + 1;
        return new DeterministicEcdsa(Octets(d));
    }

    // The key d·G, its public point worked out by the platform's crypto library from d alone.
    private static ECDsa PointOf(byte[] scalar) => Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = scalar });

    public override byte[] SignHash(byte[] hash)
    {
        var z = Bits2Int(hash);
        foreach (var k in Nonces(hash))
        {
            using var point = PointOf(Octets(k));
            var r = new BigInteger(point.ExportParameters(false).Q.X, isUnsigned: true, isBigEndian: true) % N;
            if (r.IsZero)
                continue;
            var s = BigInteger.ModPow(k, N - 2, N) * (z + (r * _d)) % N;
            if (s.IsZero)
                continue;
            return [.. Octets(r), .. Octets(s)]; // IEEE P1363 r || s; SignData turns it into DER when asked
        }
        throw new UnreachableException();
    }

    /// <summary>The candidates for k in RFC 6979 §3.2 order (steps b to h), for P-256 with SHA-256.</summary>
    private IEnumerable<BigInteger> Nonces(byte[] hash)
    {
        var x = Octets(_d);
        var h = Octets(Bits2Int(hash) % N);
        var v = Enumerable.Repeat((byte)0x01, 32).ToArray();
        var k = new byte[32];
        k = Hmac(k, [.. v, 0x00, .. x, .. h]);
        v = Hmac(k, v);
        k = Hmac(k, [.. v, 0x01, .. x, .. h]);
        v = Hmac(k, v);
        while (true)
        {
            v = Hmac(k, v);
            var candidate = new BigInteger(v, isUnsigned: true, isBigEndian: true);
            if (candidate >= 1 && candidate < N)
                yield return candidate;
            k = Hmac(k, [.. v, 0x00]);
            v = Hmac(k, v);
        }
    }

    private static byte[] Hmac(byte[] key, byte[] data) => HMACSHA256.HashData(key, data);

    // qlen = hlen = 256: the hash's bits are the integer as they stand.
    private static BigInteger Bits2Int(byte[] hash) => new(hash.AsSpan(0, Math.Min(hash.Length, 32)), isUnsigned: true, isBigEndian: true);

    private static byte[] Octets(BigInteger value)
    {
        var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        return [.. new byte[32 - bytes.Length], .. bytes];
    }

    public override bool VerifyHash(byte[] hash, byte[] signature) => _key.VerifyHash(hash, signature);

    public override ECParameters ExportParameters(bool includePrivateParameters) => _key.ExportParameters(includePrivateParameters);

    public override ECParameters ExportExplicitParameters(bool includePrivateParameters) => _key.ExportExplicitParameters(includePrivateParameters);

    public override void ImportParameters(ECParameters parameters) => throw new NotSupportedException("the key is fixed by its seed");

    public override void GenerateKey(ECCurve curve) => throw new NotSupportedException("the key is fixed by its seed");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _key.Dispose();
        base.Dispose(disposing);
    }
}
