using System.Security.Cryptography;
using System.Text;

namespace Platform.Gateway.Auth;

public static class ApiKeys
{
    public const string Prefix = "pk_";

    /// <summary>How a row's <c>key_hash</c> was made: HMAC-SHA256 under the server secret, or (rows from before it) plain SHA-256.</summary>
    public const string HmacScheme = "hmac-sha256";
    public const string LegacyScheme = "sha256";

    /// <summary>A new key: 32 random bytes, URL-safe.</summary>
    public static string New() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>What is stored for a key: HMAC-SHA256 of the key under <paramref name="secret"/> (Platform:KeyHashSecret).</summary>
    public static byte[] Hash(string key, byte[] secret) => HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(key));

    /// <summary>What rows of <see cref="LegacyScheme"/> store: the plain SHA-256 of the key.</summary>
    public static byte[] LegacyHash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
