using System.ComponentModel.DataAnnotations;

namespace Platform.Gateway.Forwarding;

/// <summary>
/// Where the services behind the gateway listen (Upstreams__Storage, Upstreams__Rewards, Upstreams__Scheduler):
/// one URL, or several separated by commas for several instances of a service. The gateway builds one YARP
/// cluster per service from them (<see cref="UpstreamClusters"/>): one setting per service is what an operator
/// writes in compose or a service manager, rather than YARP's nested ReverseProxy:Clusters:*:Destinations:* keys.
/// </summary>
public sealed class UpstreamOptions
{
    public const string SectionName = "Upstreams";

    [Required]
    [RegularExpression(UrlList, ErrorMessage = "Upstreams:Storage must be one or more http(s) URLs separated by commas")]
    public string Storage { get; set; } = "http://127.0.0.1:8081";

    [Required]
    [RegularExpression(UrlList, ErrorMessage = "Upstreams:Rewards must be one or more http(s) URLs separated by commas")]
    public string Rewards { get; set; } = "http://127.0.0.1:8083";

    [Required]
    [RegularExpression(UrlList, ErrorMessage = "Upstreams:Scheduler must be one or more http(s) URLs separated by commas")]
    public string Scheduler { get; set; } = "http://127.0.0.1:8082";

    /// <summary>
    /// How long a forwarded request may make no progress (no response headers yet, no body bytes either way) before
    /// the caller gets a 504: YARP's activity timeout, so a long download that keeps flowing is never cut.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The same for uploads: storage answers a pin only once every byte is hashed and stored.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan UploadTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// How long an instance that failed a request (unreachable, broken connection, timeout, or it answered 502/504)
    /// is left out before it is tried again: YARP's passive health check reactivation period.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan FailureCooldown { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often each instance's /health/ready is probed (YARP's active health check; also the probe's timeout).
    /// Two failed probes in a row take an instance out, one success brings it back.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(5);

    private const string UrlList = @"^\s*https?://[^,\s]+\s*(,\s*https?://[^,\s]+\s*)*$";
}
