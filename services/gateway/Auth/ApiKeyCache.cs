using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Platform.Gateway.Auth;

/// <summary>
/// Keys that authenticated recently, by their HMAC (never the key itself), with the account and role they stand for:
/// a busy client's every request would otherwise read api_keys. Only keys the database accepted are remembered, so a
/// key issued after a refused attempt works at once; the role is the key's own (a node key of an operator is a node),
/// and a node key revoked through this gateway is forgotten at once (<see cref="Forget"/>); entries expire after <see cref="GatewayOptions.ApiKeyCacheTtl"/>
/// so a future revocation or role change takes effect within that, and at most
/// <see cref="GatewayOptions.ApiKeyCacheSize"/> keys are held. Looking up by the HMAC is not constant-time, which
/// leaks nothing: without the secret nobody can choose or predict a key's HMAC.
/// </summary>
public sealed class ApiKeyCache(IOptions<GatewayOptions> options) : IDisposable
{
    public sealed record Owner(string AccountId, string Role, string? NodeKeyId = null);

    private readonly TimeSpan ttl = options.Value.ApiKeyCacheTtl;
    private readonly MemoryCache cache = new(new MemoryCacheOptions { SizeLimit = options.Value.ApiKeyCacheSize });

    public Owner? Find(byte[] keyHash) => cache.TryGetValue(Convert.ToHexString(keyHash), out Owner? owner) ? owner : null;

    public void Remember(byte[] keyHash, string accountId, string role, string? nodeKeyId = null)
    {
        if (ttl <= TimeSpan.Zero)
            return;
        cache.Set(Convert.ToHexString(keyHash), new Owner(accountId, role, nodeKeyId), new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = ttl, Size = 1 });
    }

    /// <summary>A revoked key: refused from the next request on (by this gateway; others within the TTL).</summary>
    public void Forget(byte[] keyHash) => cache.Remove(Convert.ToHexString(keyHash));

    public void Dispose() => cache.Dispose();
}
