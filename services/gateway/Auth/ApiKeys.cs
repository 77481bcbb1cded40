using System.Security.Cryptography;
using System.Text;

namespace Platform.Gateway.Auth;

public static class ApiKeys
{
    public const string Prefix = "pk_";

    /// <summary>A new key: 32 random bytes, URL-safe.</summary>
    public static string New() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
