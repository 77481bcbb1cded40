using System.ComponentModel.DataAnnotations;

namespace Platform.Worker.Node;

public sealed class WorkerOptions
{
    public const string SectionName = "Worker";

    /// <summary>
    /// A node key its operator made for this node (<c>POST /v1/account/node-keys</c>; <c>platform node start</c> makes
    /// one): it enrolls this node under the operator's account, which earns its credits, and fetches and pins blobs,
    /// and can do nothing else. The operator's own key never goes to a node.
    /// </summary>
    [Required(ErrorMessage = "Worker:NodeKey is required: make a node key with the operator's key (POST /v1/account/node-keys, or 'platform node start') and pass it (Worker__NodeKey)")]
    public string NodeKey { get; set; } = "";

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

    /// <summary>
    /// auto: calibrate every available backend and use the fastest per kernel: the hand-written OpenCL one where
    /// a driver has a GPU or other accelerator (not the CPU: PoCL matches SIMD's speed there and costs ~180 MiB), ILGPU where it has a CUDA GPU (or an OpenCL device it supports), and SIMD always; never
    /// ILGPU's CPU accelerator, an emulator. Or a comma-separated list of simd, opencl and ilgpu: exactly those
    /// backends, failing to start when a named one is missing rather than silently computing elsewhere
    /// (ilgpu then takes ILGPU's best accelerator, its CPU emulator included).
    /// </summary>
    [Required]
    [RegularExpression("^(auto|(simd|opencl|ilgpu)(,(simd|opencl|ilgpu))*)$", ErrorMessage = "Worker:Backend must be auto, or a comma-separated list of simd, opencl and ilgpu")]
    public string Backend { get; set; } = "auto";

    /// <summary>The backends <see cref="Backend"/> names ("auto" alone for auto).</summary>
    public IReadOnlySet<string> Backends => Backend.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();

    /// <summary>The OpenCL loader to open: the ICD loader finds the vendor drivers (NVIDIA, AMD, Intel, PoCL).</summary>
    [Required]
    public string OpenClLibrary { get; set; } = "libOpenCL.so.1";

    /// <summary>Compiled OpenCL programs (PoCL's cache); defaults to DataDirectory/kernels. Sharing one across nodes is safe.</summary>
    public string? KernelCacheDirectory { get; set; }

    /// <summary>Downloaded inputs, reused by later jobs on the same data; defaults to DataDirectory/inputs.</summary>
    public string? InputCacheDirectory { get; set; }

    /// <summary>Bytes the input cache may hold; least recently used inputs are evicted beyond it.</summary>
    [Range(0, long.MaxValue)]
    public long InputCacheBytes { get; set; } = 2L << 30;

    /// <summary>The most input bytes one attempt may bring in; larger jobs are refused before anything is downloaded.</summary>
    [Range(1, long.MaxValue)]
    public long MaxInputBytes { get; set; } = 1L << 30;

    /// <summary>
    /// How long a blob read or pin is retried while the gateway or storage answers as if restarting or overloaded (no
    /// connection, 408, 429, 502, 503, 504); the attempt keeps its lease meanwhile. Beyond it the attempt's message is retried.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan BlobRetryWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// An attempt reports that it started only if it is still running this long after it did. A tiny job's result
    /// follows sooner and proves the start itself (the scheduler shows the job running before completed): one message
    /// and one transaction of the scheduler's fewer per job. Zero reports every start at once.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan StartReportDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How often a running attempt reports its progress.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the node waits with no attempt running before it gives memory back (<see cref="MemoryTrim"/>); zero turns it off.</summary>
    public TimeSpan TrimAfterIdle { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Below this resident size the idle node keeps what it has: trimming would buy nothing.</summary>
    public long TrimAboveMegabytes { get; set; } = 120;

    /// <summary>
    /// Where Linux exposes the CPU package energy counters (powercap: Intel RAPL, AMD on recent kernels). Where one
    /// is readable each attempt's joules are measured; otherwise they are estimated from calibrated power and time.
    /// </summary>
    [Required]
    public string PowerSensorRoot { get; set; } = "/sys/class/powercap";

    /// <summary>Faults a test network plants in a worker on purpose. Never set them on a real node.</summary>
    public WorkerFaults Faults { get; set; } = new();

    public string KernelCachePath => KernelCacheDirectory ?? Path.Combine(DataDirectory, "kernels");

    public string InputCachePath => InputCacheDirectory ?? Path.Combine(DataDirectory, "inputs");
}

public sealed class WorkerFaults
{
    /// <summary>Return wrong outputs (every element changed), signed as usual: a cheating or broken node, for verification tests.</summary>
    public bool CorruptOutputs { get; set; }

    /// <summary>Wait this long before running each kernel: a slow node, so a test can pause or restart things while a job runs.</summary>
    public TimeSpan KernelDelay { get; set; }
}
