using System.ComponentModel.DataAnnotations;

namespace Platform.Scheduler.Placement;

public sealed class SchedulerOptions
{
    public const string SectionName = "Scheduler";

    /// <summary>How often workers say they are alive; three missed beats and a worker gets no new work.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a worker holds an attempt before it may be given to another worker.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Safety net for missed wake-ups: queued jobs are looked at least this often.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(1);
}
