using System.Diagnostics;
using Microsoft.Extensions.Options;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Worker.Compute.Ilgpu;
using Platform.Worker.Compute.OpenCl;
using Platform.Worker.Compute.Simd;
using Platform.Worker.Node;

namespace Platform.Worker.Compute;

/// <summary>What the node found out about itself at start: the backend each kernel runs on and how fast.</summary>
public sealed record Capabilities(
    IReadOnlyList<DeviceInfo> Devices,
    IReadOnlyDictionary<string, double> GflopsPerKernel,
    IReadOnlyDictionary<string, string> BackendPerKernel,
    IReadOnlyList<KernelRate> Measured,
    double PowerWatts,
    bool PowerMeasured,
    IReadOnlyList<string> Notes,
    bool Reproducible = true)
{
    /// <summary>Every measured rate, backend → kernel → GFLOP/s.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> GflopsPerBackend =>
        Measured.GroupBy(r => r.Backend).ToDictionary(g => g.Key, g => (IReadOnlyDictionary<string, double>)g.ToDictionary(r => r.Kernel, r => Math.Round(r.Gflops, 3)));
}

/// <summary>
/// The node's compute: opens the backends the configuration allows, calibrates each kernel on each of them
/// once, and from then on hands every kernel to the backend that ran it fastest. With Worker:Backend=auto the SIMD
/// backend is always there, so a machine without OpenCL or a GPU still serves the whole catalogue.
/// </summary>
public sealed class ComputeNode : IDisposable
{
    // Without a power sensor, a CPU core under full vector load is taken to draw about this much.
    private const double EstimatedWattsPerCore = 10;

    private readonly List<IComputeBackend> _backends = [];
    private readonly List<string> _notes = [];
    private readonly ILogger<ComputeNode> _logger;
    private readonly string _powerSensorRoot;
    private readonly Lazy<Task<Capabilities>> _calibration;
    private Dictionary<string, IComputeBackend> _perKernel = [];

    public ComputeNode(IOptions<WorkerOptions> options, ILogger<ComputeNode> logger)
    {
        _logger = logger;
        var o = options.Value;
        _powerSensorRoot = o.PowerSensorRoot;
        var wanted = o.Backends;
        var auto = wanted.Contains("auto");
        if (auto || wanted.Contains("opencl"))
        {
            Directory.CreateDirectory(o.KernelCachePath);
            // auto opens OpenCL on an accelerator only: on the CPU it matches the SIMD backend's speed (bench/README.md,
            // "node memory") and its runtime (PoCL's LLVM) would make most of a resting node's memory.
            var openCl = OpenClBackend.TryCreate(o.OpenClLibrary, o.KernelCachePath, out var reason, allowCpu: !auto);
            if (openCl is not null)
                _backends.Add(openCl);
            else if (!auto)
                throw new InvalidOperationException($"Worker:Backend names opencl but OpenCL is not usable here: {reason}");
            else
                Note($"OpenCL unavailable ({reason}); its kernels run on the other backends");
        }
        if (auto || wanted.Contains("ilgpu"))
        {
            // auto opens ILGPU only on a real accelerator (CUDA, or an OpenCL device ILGPU accepts): its CPU
            // accelerator is an emulator the SIMD backend always beats, and calibrating it would slow every start.
            // Naming ilgpu explicitly takes whatever ILGPU has, the emulator included.
            var reasons = new List<string>();
            var ilgpu = IlgpuBackend.TryOpen(allowCpu: !auto, o.OpenClLibrary, reasons);
            foreach (var reason in reasons)
                Note(reason);
            if (ilgpu is not null)
            {
                _backends.Add(ilgpu);
                logger.LogInformation("ILGPU backend on {Device}", ilgpu.Device.Name);
                if (ilgpu.Kind == ILGPU.Runtime.AcceleratorType.CPU)
                    Note($"ILGPU runs on its CPU accelerator ({ilgpu.Device.Name}): correct but slow, calibrated on small problems");
            }
            else if (!auto)
                throw new InvalidOperationException($"Worker:Backend names ilgpu but ILGPU is not usable here: {string.Join("; ", reasons)}");
        }
        if (auto || wanted.Contains("simd"))
            _backends.Add(new SimdBackend());
        _perKernel = KernelCatalog.Names.ToDictionary(k => k, _ => _backends[^1]);
        _calibration = new(() => Task.Run(Calibrate));
    }

    // Whatever the operator should know about the node's compute goes to the log and into WorkerOnline's notes.
    private void Note(string note)
    {
        _notes.Add(note);
        _logger.LogWarning("{Note}", note);
    }

    public IReadOnlyList<IComputeBackend> Backends => _backends;

    /// <summary>What the node has found out about its backends so far (also sent in WorkerOnline after calibration).</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>Calibrates on first use; later callers get the same result.</summary>
    public Task<Capabilities> CalibrateAsync() => _calibration.Value;

    /// <summary>The backend that runs <paramref name="kernel"/> fastest on this node (the last configured one before calibration).</summary>
    public IComputeBackend For(string kernel) => _perKernel[kernel];

    private Capabilities Calibrate()
    {
        var energy = PowerSensor.TryOpen(_powerSensorRoot);
        var startJoules = energy?.ReadJoules();
        var watch = Stopwatch.StartNew();
        var measured = new List<KernelRate>();
        var failedSelfTest = new HashSet<(string Backend, string Kernel)>();
        foreach (var backend in _backends)
        {
            foreach (var (kernel, detail) in ArithmeticSelfTest.Differences(backend, CancellationToken.None))
            {
                failedSelfTest.Add((backend.Name, kernel));
                _notes.Add($"{backend.Name} computes other bytes than the kernel rules for {kernel} ({detail}); {kernel} does not run on it");
                _logger.LogWarning("{Backend} computes other bytes than the kernel rules for {Kernel} ({Detail}); {Kernel} does not run on it", backend.Name, kernel, detail, kernel);
            }
            var started = Stopwatch.StartNew();
            var rates = Calibration.Measure(backend, CancellationToken.None);
            _logger.LogInformation("Calibrated {Backend} ({Device}) in {Seconds:F1} s", backend.Name, backend.Device.Name, started.Elapsed.TotalSeconds);
            measured.AddRange(rates);
            foreach (var rate in rates)
                _logger.LogInformation("Calibrated {Kernel} on {Backend}: {Gflops:F1} GFLOP/s", rate.Kernel, rate.Backend, rate.Gflops);
        }
        // The fastest backend that computes the rules' bytes; a kernel that none computes exactly still runs (on the
        // fastest), but then the node does not announce the reproducible revision and is verified within the tolerance.
        var best = measured.GroupBy(r => r.Kernel).ToDictionary(g => g.Key,
            g => g.Where(r => !failedSelfTest.Contains((r.Backend, r.Kernel))).MaxBy(r => r.Gflops) ?? g.MaxBy(r => r.Gflops)!);
        var reproducible = best.Values.All(r => !failedSelfTest.Contains((r.Backend, r.Kernel)));
        if (!reproducible)
            _notes.Add("no backend here computes every kernel exactly by the kernel rules: results are verified within the tolerance, not by equality");
        _perKernel = best.ToDictionary(b => b.Key, b => _backends.First(x => x.Name == b.Value.Backend));

        double watts;
        var powerMeasured = false;
        if (energy is not null && startJoules is double before && energy.ReadJoules() is double after && after > before)
        {
            watts = (after - before) / watch.Elapsed.TotalSeconds;
            powerMeasured = true;
        }
        else
        {
            watts = EstimatedWattsPerCore * Environment.ProcessorCount;
            _notes.Add($"power estimated at {watts:F0} W ({EstimatedWattsPerCore:F0} W per core); no readable power sensor");
        }
        _logger.LogInformation("Kernels run on: {Choice}; power {Watts:F0} W ({How})",
            string.Join(", ", best.Select(b => $"{b.Key}={b.Value.Backend}")), watts, powerMeasured ? "measured" : "estimated");
        return new Capabilities(
            _backends.Select(b => b.Device).ToList(),
            best.ToDictionary(b => b.Key, b => Math.Round(b.Value.Gflops, 2)),
            best.ToDictionary(b => b.Key, b => b.Value.Backend),
            measured,
            Math.Round(watts, 1),
            powerMeasured,
            _notes,
            reproducible);
    }

    public void Dispose()
    {
        foreach (var backend in _backends)
            backend.Dispose();
    }
}

/// <summary>
/// The CPU package energy counter Linux exposes through powercap (Intel RAPL, and AMD's on recent kernels).
/// Often unreadable in containers and VMs, in which case power is estimated instead.
/// </summary>
public sealed class PowerSensor(string path, double? rangeJoules = null)
{
    /// <summary>The first package zone under <paramref name="root"/> (normally /sys/class/powercap) whose counter can be read.</summary>
    public static PowerSensor? TryOpen(string root = "/sys/class/powercap")
    {
        if (!Directory.Exists(root))
            return null;
        foreach (var zone in Directory.EnumerateDirectories(root).Order())
        {
            var name = Path.Combine(zone, "name");
            var sensor = new PowerSensor(Path.Combine(zone, "energy_uj"), ReadMicrojoules(Path.Combine(zone, "max_energy_range_uj")));
            if (File.Exists(name) && File.ReadAllText(name).StartsWith("package", StringComparison.Ordinal) && sensor.ReadJoules() is not null)
                return sensor;
        }
        return null;
    }

    /// <summary>Where the counter wraps round to zero, when the zone says.</summary>
    public double? RangeJoules { get; } = rangeJoules;

    public double? ReadJoules() => ReadMicrojoules(path);

    private static double? ReadMicrojoules(string file)
    {
        try
        {
            return long.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture) / 1e6;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
