using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Platform.Gateway.Auth;

/// <summary>Hashes API keys under the configured secret, and compares in constant time.</summary>
public sealed class ApiKeyHasher(IOptions<GatewayOptions> options)
{
    private readonly byte[] secret = options.Value.KeyHashSecretBytes();
    private readonly byte[]? adminHash = string.IsNullOrEmpty(options.Value.AdminKey) ? null : ApiKeys.Hash(options.Value.AdminKey, options.Value.KeyHashSecretBytes());

    public byte[] Hash(string key) => ApiKeys.Hash(key, secret);

    /// <summary>Whether <paramref name="keyHash"/> (this hasher's hash of a presented key) is the admin key's; constant time.</summary>
    public bool IsAdmin(byte[] keyHash) => adminHash is not null && CryptographicOperations.FixedTimeEquals(keyHash, adminHash);
}
