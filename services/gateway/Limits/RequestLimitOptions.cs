using System.ComponentModel.DataAnnotations;

namespace Platform.Gateway.Limits;

/// <summary>
/// How much each caller may ask of the gateway. Rates are per API key (per address for anonymous calls), as a
/// token bucket: <c>PerSecond</c> on average and bursts of up to <c>Burst</c>. Operators' workers fetch
/// inputs and pin outputs for every job they run, so operators get more; admins are not limited.
/// </summary>
public sealed class RequestLimitOptions
{
    public const string SectionName = "Limits";

    [Range(1, 1_000_000)]
    public int ClientPerSecond { get; set; } = 50;

    [Range(1, 1_000_000)]
    public int ClientBurst { get; set; } = 200;

    [Range(1, 1_000_000)]
    public int OperatorPerSecond { get; set; } = 500;

    [Range(1, 1_000_000)]
    public int OperatorBurst { get; set; } = 2000;

    [Range(1, 1_000_000)]
    public int AnonymousPerSecond { get; set; } = 20;

    [Range(1, 1_000_000)]
    public int AnonymousBurst { get; set; } = 50;

    /// <summary>Largest JSON request body; blob uploads are streamed and limited by storage instead.</summary>
    [Range(1024, 1L << 30)]
    public long MaxJsonBodyBytes { get; set; } = 1 << 20;

    /// <summary>
    /// Largest total of a request's headers (names and values). The gateway refuses more with a 431 problem; the
    /// HTTP server itself refuses headers past four times this, before any of the gateway's code runs (a bare 431).
    /// </summary>
    [Range(1024, 1 << 20)]
    public int MaxHeaderBytes { get; set; } = 32 << 10;

    /// <summary>Event streams one account may hold open on one gateway at once (429 beyond).</summary>
    [Range(1, 100_000)]
    public int MaxStreamsPerKey { get; set; } = 16;

    /// <summary>Event streams one gateway holds open at once, of every account (429 beyond).</summary>
    [Range(1, 1_000_000)]
    public int MaxStreams { get; set; } = 1_000;

    /// <summary>Largest body of POST /v1/jobs:batch: 10,000 jobs of a few hundred bytes each fit with room to spare.</summary>
    [Range(1024, 1L << 30)]
    public long MaxBatchBodyBytes { get; set; } = 32 << 20;

    /// <summary>
    /// Keys the gateway has not seen in the last minute are looked up in the database: each address may do so this
    /// many times a second on average, in bursts of <see cref="KeyLookupBurst"/> (429 beyond, before any lookup).
    /// </summary>
    [Range(1, 1_000_000)]
    public int KeyLookupsPerSecond { get; set; } = 50;

    [Range(1, 1_000_000)]
    public int KeyLookupBurst { get; set; } = 200;

    /// <summary>
    /// Unknown keys an address may present in a minute; past that, its requests with keys the gateway has not seen
    /// lately get 429 <c>bad-key-cooldown</c> for <see cref="BadKeyCooldown"/>, without a database lookup.
    /// </summary>
    [Range(1, 1_000_000)]
    public int BadKeysPerMinute { get; set; } = 10;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan BadKeyCooldown { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Largest output a job may plan, by its kernel's shape model (422 <c>output-too-large</c> at submit): every output
    /// is pinned as one blob, so more than storage keeps could never be delivered.
    /// </summary>
    [Range(1024, 1L << 40)]
    public long MaxOutputBytes { get; set; } = 1L << 30;
}
