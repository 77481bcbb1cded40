using System.ComponentModel.DataAnnotations;

namespace Platform.Gateway.Forwarding;

/// <summary>Where the services behind the gateway listen (Upstreams__Storage, Upstreams__Rewards, Upstreams__Scheduler).</summary>
public sealed class UpstreamOptions
{
    public const string SectionName = "Upstreams";

    [Required]
    public Uri Storage { get; set; } = new("http://127.0.0.1:8081");

    [Required]
    public Uri Rewards { get; set; } = new("http://127.0.0.1:8083");

    [Required]
    public Uri Scheduler { get; set; } = new("http://127.0.0.1:8082");
}
