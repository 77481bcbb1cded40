using System.ComponentModel.DataAnnotations;

namespace Platform.Worker.Node;

public sealed class WorkerOptions
{
    public const string SectionName = "Worker";

    /// <summary>The operator's API key: registers this node under the operator's account, which earns its credits.</summary>
    [Required(ErrorMessage = "Worker:OperatorKey is required: create an operator account and pass its key (Worker__OperatorKey)")]
    public string OperatorKey { get; set; } = "";

    /// <summary>Public gateway URL: inputs are fetched and outputs pinned through it.</summary>
    [Required]
    public Uri GatewayUrl { get; set; } = new("http://127.0.0.1:8080");

    [Required]
    [RegularExpression("^[a-z0-9-]{1,32}$")]
    public string Region { get; set; } = "local";

    /// <summary>Attempts run at once.</summary>
    [Range(1, 256)]
    public int Slots { get; set; } = 1;

    /// <summary>Where the node keeps its identity between restarts.</summary>
    [Required]
    public string DataDirectory { get; set; } = ".platform/worker";

    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
}
