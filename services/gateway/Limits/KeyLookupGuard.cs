using System.Threading.RateLimiting;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Platform.Gateway.Auth;

namespace Platform.Gateway.Limits;

/// <summary>
/// Guards the database from key guessing: a key the gateway has not seen lately (not the admin's, not in
/// <see cref="ApiKeyCache"/>) costs a database read to authenticate, so before that read each address is held to
/// <see cref="RequestLimitOptions.KeyLookupsPerSecond"/>, and an address that presented more than
/// <see cref="RequestLimitOptions.BadKeysPerMinute"/> unknown keys cools down for
/// <see cref="RequestLimitOptions.BadKeyCooldown"/>. Keys already known pass untouched, so a guesser behind the
/// same address as real users slows only the lookups of keys not yet seen. At most 100,000 addresses are tracked.
/// </summary>
public sealed class KeyLookupGuard : IDisposable
{
    private sealed class Failures
    {
        public int Count;
        public DateTimeOffset WindowStart;
        public DateTimeOffset CoolUntil;
    }

    private readonly RequestLimitOptions _options;
    private readonly TimeProvider _clock;
    private readonly MemoryCache _failures = new(new MemoryCacheOptions { SizeLimit = 100_000 });
    private readonly PartitionedRateLimiter<string> _lookups;

    public KeyLookupGuard(IOptions<RequestLimitOptions> options, TimeProvider clock)
    {
        _options = options.Value;
        _clock = clock;
        _lookups = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = _options.KeyLookupBurst,
            TokensPerPeriod = _options.KeyLookupsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>Records an unknown key presented from <paramref name="address"/>.</summary>
    public void Failed(string address)
    {
        var now = _clock.GetUtcNow();
        var failures = _failures.GetOrCreate(address, entry =>
        {
            entry.Size = 1;
            entry.SlidingExpiration = TimeSpan.FromMinutes(1) + _options.BadKeyCooldown;
            return new Failures { WindowStart = now };
        })!;
        lock (failures)
        {
            if (now - failures.WindowStart > TimeSpan.FromMinutes(1))
            {
                failures.WindowStart = now;
                failures.Count = 0;
            }
            if (++failures.Count > _options.BadKeysPerMinute)
                failures.CoolUntil = now + _options.BadKeyCooldown;
        }
    }

    /// <summary>How long <paramref name="address"/> still cools down after too many unknown keys; zero when it does not.</summary>
    public TimeSpan CoolingFor(string address)
    {
        if (!_failures.TryGetValue(address, out Failures? failures) || failures is null)
            return TimeSpan.Zero;
        lock (failures)
            return failures.CoolUntil - _clock.GetUtcNow() is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>Takes one of the address's key lookups; false when it has none left this second.</summary>
    public bool TryLookup(string address)
    {
        using var lease = _lookups.AttemptAcquire(address);
        return lease.IsAcquired;
    }

    public int BadKeysPerMinute => _options.BadKeysPerMinute;

    public static string AddressOf(HttpContext http) => http.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    public void Dispose()
    {
        _failures.Dispose();
        _lookups.Dispose();
    }
}
