using System.Text;
using Platform.Gateway.Auth;

namespace Platform.Gateway.Tests.Auth;

public sealed class ApiKeysTests
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("a-test-secret-of-at-least-thirty-two-chars");

    [Fact]
    public void New_keys_are_unique_url_safe_and_carry_the_prefix()
    {
        var keys = Enumerable.Range(0, 500).Select(_ => ApiKeys.New()).ToList();

        Assert.Equal(500, keys.Distinct().Count());
        Assert.All(keys, k => Assert.Matches("^pk_[A-Za-z0-9_-]{43}$", k));
    }

    [Fact]
    public void Stored_hash_is_stable_and_depends_on_the_key_and_the_secret()
    {
        var key = ApiKeys.New();

        var hash = ApiKeys.Hash(key, Secret);

        Assert.Equal(32, hash.Length);
        Assert.Equal(hash, ApiKeys.Hash(key, Secret));
        Assert.NotEqual(hash, ApiKeys.Hash(key + "x", Secret));
        Assert.NotEqual(hash, ApiKeys.Hash(key, Encoding.UTF8.GetBytes("another-secret-of-at-least-thirty-two-chars")));
        // Not the plain SHA-256 of the key: without the secret a copy of the table checks no guess.
        Assert.NotEqual(hash, ApiKeys.LegacyHash(key));
    }
}
