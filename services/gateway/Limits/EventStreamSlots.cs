using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;

namespace Platform.Gateway.Limits;

/// <summary>
/// How many event streams (GET /v1/jobs/{id}/events, /v1/batches/{id}/events) are open on this gateway, per account
/// and in all: each holds a request open and reads the database while it lasts, so a few hundred from one key would
/// otherwise take the connection pool from everyone. Past a limit the stream is refused with a 429 before it starts.
/// </summary>
public sealed class EventStreamSlots(IOptions<RequestLimitOptions> options)
{
    private const int RetryAfterSeconds = 5;
    private readonly ConcurrentDictionary<string, int> _byAccount = new();
    private int _total;

    /// <summary>
    /// A slot for one more stream of the caller, or the 429 that refuses it; dispose the slot when the stream ends.
    /// </summary>
    public (IDisposable? Slot, IResult? Refusal) TryTake(HttpContext http)
    {
        var o = options.Value;
        var account = http.User.AccountOf();
        if (Interlocked.Increment(ref _total) > o.MaxStreams)
        {
            Interlocked.Decrement(ref _total);
            return (null, Refuse(http, $"this gateway has {o.MaxStreams} event streams open, its limit; retry shortly or poll GET /v1/jobs/{{id}}"));
        }
        var mine = _byAccount.AddOrUpdate(account, 1, (_, n) => n + 1);
        if (mine > o.MaxStreamsPerKey)
        {
            Release(account);
            return (null, Refuse(http, $"this account has {o.MaxStreamsPerKey} event streams open, its limit; close one (or follow many jobs with one batch stream) and retry"));
        }
        return (new Slot(this, account), null);
    }

    private void Release(string account)
    {
        // Removed at zero, so the map holds only accounts with streams open.
        if (_byAccount.AddOrUpdate(account, 0, (_, n) => n - 1) <= 0)
            _byAccount.TryRemove(KeyValuePair.Create(account, 0));
        Interlocked.Decrement(ref _total);
    }

    private static IResult Refuse(HttpContext http, string detail)
    {
        http.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-streams", "Too many event streams", detail);
    }

    private sealed class Slot(EventStreamSlots owner, string account) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                owner.Release(account);
        }
    }
}
