using System.ComponentModel.DataAnnotations;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// Account webhooks: an account holder may have its account's events (a low balance) POSTed to a URL of its choosing.
/// The only calls out of the deployment, and only where an account asked for them: a deployment that must send
/// nothing out sets <see cref="Enabled"/> false.
/// </summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Webhooks";

    /// <summary>Whether accounts may set a webhook and events are sent; false refuses the API (403) and sends nothing.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Whether a webhook may reach loopback, private, link-local (cloud metadata) and other non-public addresses: false
    /// in any real deployment, or an account could make this service call the deployment's own insides. For tests and
    /// a local network whose receivers are on this machine.
    /// </summary>
    public bool AllowPrivateAddresses { get; set; }

    /// <summary>How long one delivery may take, connecting included.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The wait after a first failed attempt; it doubles after each further one, up to <see cref="MaxRetryDelay"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan FirstRetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    [Range(typeof(TimeSpan), "00:00:00.010", "7.00:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Attempts before a delivery is given up (failed): 16, with the default waits (5 s doubling to 1 h), ride out about
    /// six and a half hours of a receiver down.
    /// </summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 16;

    /// <summary>How often the sender looks for deliveries due (it is also woken when an event is queued).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The wait before attempt <paramref name="failed"/> + 1, after <paramref name="failed"/> failed ones.</summary>
    public TimeSpan RetryDelayAfter(int failed)
    {
        var doubled = FirstRetryAfter.Ticks * Math.Pow(2, Math.Clamp(failed - 1, 0, 40));
        return doubled >= MaxRetryDelay.Ticks ? MaxRetryDelay : TimeSpan.FromTicks((long)doubled);
    }
}
