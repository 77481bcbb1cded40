using Platform.Gateway.Auth;

namespace Platform.Gateway.Tests.Auth;

public sealed class ApiKeysTests
{
    [Fact]
    public void New_keys_are_unique_url_safe_and_carry_the_prefix()
    {
        var keys = Enumerable.Range(0, 500).Select(_ => ApiKeys.New()).ToList();

        Assert.Equal(500, keys.Distinct().Count());
        Assert.All(keys, k => Assert.Matches("^pk_[A-Za-z0-9_-]{43}$", k));
    }

    [Fact]
    public void Stored_hash_does_not_contain_the_key_and_is_stable()
    {
        var key = ApiKeys.New();

        var hash = ApiKeys.Hash(key);

        Assert.Equal(32, hash.Length);
        Assert.Equal(hash, ApiKeys.Hash(key));
        Assert.NotEqual(hash, ApiKeys.Hash(key + "x"));
    }
}
