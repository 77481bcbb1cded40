using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Contracts.Kernels;
using Platform.Testing.Kernels;
using Platform.Worker.Compute;
using Platform.Worker.Node;

namespace Platform.Worker.Tests.Compute;

public sealed class ComputeNodeTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("platform-node-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    private ComputeNode Node(string backend = "auto", string library = "libOpenCL.so.1", ILogger<ComputeNode>? logger = null) => new(
        Options.Create(new WorkerOptions { NodeKey = "k", DataDirectory = _data, KernelCacheDirectory = KernelCache.Directory, Backend = backend, OpenClLibrary = library }),
        logger ?? NullLogger<ComputeNode>.Instance);

    /// <summary>Keeps what the node logs.</summary>
    private sealed class ListLogger : ILogger<ComputeNode>
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
                Lines.Add($"{logLevel}: {formatter(state, exception)}");
        }
    }

    // No CPU core does more than 64 fp32 FLOP per cycle (two 16-wide FMA pipes), and none runs at 6 GHz.
    private static double CpuPeakGflops => Environment.ProcessorCount * 6.0 * 64;

    // No single GPU reaches 200 fp32 TFLOP/s (the largest of 2025 do under 100); a rate above that is a timing bug.
    private const double GpuPeakGflops = 200_000;

    /// <summary>
    /// The most a backend's device can do, by what the device says it is: OpenCL may run on the CPU (pocl, this
    /// machine) or on a GPU, whose rates no CPU bound holds.
    /// </summary>
    private static double PeakGflops(IComputeBackend backend) => backend.Device.Kind switch
    {
        "cpu" => CpuPeakGflops,
        "gpu" => GpuPeakGflops,
        var kind => throw new InvalidOperationException($"{backend.Name} reports a device of kind '{kind}'"),
    };

    [Fact]
    public async Task Calibration_measures_every_kernel_on_both_backends_at_plausible_rates_and_picks_the_faster()
    {
        using var node = Node(backend: "opencl,simd");

        var capabilities = await node.CalibrateAsync();

        Assert.True(node.Backends.Count == 2, "OpenCL did not start: " + string.Join("; ", capabilities.Notes));
        Assert.Equal(["opencl", "simd"], node.Backends.Select(b => b.Name).Order());
        Assert.Equal(KernelCatalog.Names.Count * 2, capabilities.Measured.Count);
        var backends = node.Backends.ToDictionary(b => b.Name);
        Assert.Equal("cpu", backends["simd"].Device.Kind);
        Assert.All(capabilities.Measured, rate => Assert.InRange(rate.Gflops, 1e-3, PeakGflops(backends[rate.Backend])));
        foreach (var kernel in KernelCatalog.Names)
        {
            var fastest = capabilities.Measured.Where(r => r.Kernel == kernel).MaxBy(r => r.Gflops)!;
            Assert.Equal(fastest.Backend, capabilities.BackendPerKernel[kernel]);
            Assert.Equal(fastest.Backend, node.For(kernel).Name);
        }
        Assert.Equal(2, capabilities.Devices.Count);
        Assert.True(capabilities.PowerWatts > 0);
    }

    [Fact]
    public async Task Without_an_OpenCL_library_every_kernel_runs_on_simd_and_the_node_says_why()
    {
        using var node = Node(library: "libOpenCL-not-installed.so.1");

        var capabilities = await node.CalibrateAsync();

        Assert.Equal("simd", Assert.Single(node.Backends).Name);
        Assert.All(KernelCatalog.Names, kernel => Assert.Equal("simd", capabilities.BackendPerKernel[kernel]));
        Assert.Contains(capabilities.Notes, note => note.Contains("OpenCL unavailable", StringComparison.Ordinal) && note.Contains("libOpenCL-not-installed.so.1", StringComparison.Ordinal));
    }

    [Fact]
    public void Forcing_opencl_where_it_is_missing_stops_the_node_with_the_reason()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Node(backend: "opencl", library: "libOpenCL-not-installed.so.1"));

        Assert.Contains("Worker:Backend names opencl", error.Message);
    }

    [Fact]
    public void Auto_leaves_out_the_ilgpu_cpu_emulator_and_says_why_ilgpu_is_not_used()
    {
        var log = new ListLogger();
        using var node = Node(logger: log);

        // No CUDA here, and PoCL lacks what ILGPU's OpenCL backend needs: auto does not open ILGPU at all.
        Assert.DoesNotContain(node.Backends, b => b.Name == "ilgpu");
        var notes = string.Join("\n", node.Notes);
        Assert.Contains("ILGPU: no CUDA device", notes);
        Assert.Contains("lacks the generic address space", notes);
        Assert.Contains("CPU accelerator not used", notes);
        Assert.Contains(log.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal) && line.Contains("CPU accelerator not used", StringComparison.Ordinal));
    }

    [Fact]
    public void Auto_leaves_out_opencl_on_the_cpu_and_says_why_while_naming_it_opens_it()
    {
        // PoCL is this machine's only OpenCL device: the CPU that the SIMD backend already uses, at the same speed.
        using (var auto = Node())
        {
            Assert.Equal(["simd"], auto.Backends.Select(b => b.Name));
            Assert.Contains(auto.Notes, n => n.Contains("OpenCL unavailable", StringComparison.Ordinal) && n.Contains("pocl", StringComparison.Ordinal)
                && n.Contains("this machine's CPU", StringComparison.Ordinal));
        }
        using var named = Node(backend: "opencl");
        Assert.Equal("cpu", Assert.Single(named.Backends).Device.Kind);
    }

    [Fact]
    public void Naming_ilgpu_without_a_gpu_runs_on_its_cpu_accelerator_and_the_node_says_why()
    {
        var log = new ListLogger();
        using var node = Node(backend: "ilgpu", logger: log);

        var ilgpu = Assert.IsType<Platform.Worker.Compute.Ilgpu.IlgpuBackend>(Assert.Single(node.Backends));
        Assert.Equal(ILGPU.Runtime.AcceleratorType.CPU, ilgpu.Kind);
        Assert.Equal("cpu", ilgpu.Device.Kind);
        Assert.Contains(node.Notes, n => n.Contains("no CUDA device", StringComparison.Ordinal));
        // PoCL 3.1 is installed here: ILGPU sees it and refuses it, and the note says which device and why.
        Assert.Contains(node.Notes, n => n.Contains("OpenCL device", StringComparison.Ordinal) && n.Contains("refused", StringComparison.Ordinal) && n.Contains("generic address space", StringComparison.Ordinal));
        Assert.Contains(node.Notes, n => n.Contains("ILGPU runs on its CPU accelerator", StringComparison.Ordinal));
        Assert.Contains(log.Lines, line => line.Contains("generic address space", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_simd_and_the_ilgpu_emulator_every_kernel_routes_to_simd_and_both_rates_are_reported()
    {
        using var node = Node(backend: "simd,ilgpu");

        var capabilities = await node.CalibrateAsync();

        Assert.Equal(["ilgpu", "simd"], node.Backends.Select(b => b.Name).Order());
        Assert.Equal(KernelCatalog.Names.Count * 2, capabilities.Measured.Count);
        foreach (var kernel in KernelCatalog.Names)
        {
            var simd = capabilities.Measured.Single(r => r.Kernel == kernel && r.Backend == "simd");
            var ilgpu = capabilities.Measured.Single(r => r.Kernel == kernel && r.Backend == "ilgpu");
            Assert.True(simd.Gflops > ilgpu.Gflops, $"{kernel}: simd {simd.Gflops:F3} GFLOP/s, ilgpu {ilgpu.Gflops:F3}");
            Assert.InRange(ilgpu.Gflops, 1e-6, CpuPeakGflops);
            Assert.Equal("simd", capabilities.BackendPerKernel[kernel]);
            Assert.Equal("simd", node.For(kernel).Name);
        }
    }

    [Fact]
    public async Task Forcing_simd_uses_only_simd()
    {
        using var node = Node(backend: "simd");

        var capabilities = await node.CalibrateAsync();

        Assert.Equal("simd", Assert.Single(node.Backends).Name);
        Assert.DoesNotContain(capabilities.Notes, n => n.Contains("OpenCL", StringComparison.Ordinal));
    }
}
