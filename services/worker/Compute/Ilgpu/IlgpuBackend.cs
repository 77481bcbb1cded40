using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using Platform.Contracts.Messages;

using Platform.Worker.Compute.OpenCl;

namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// The primitives as ILGPU kernels (<see cref="IlgpuKernels"/>) on one ILGPU accelerator, chosen in this order:
/// a CUDA GPU (the path for operators with NVIDIA cards), else a device of ILGPU's OpenCL backend that has what it
/// needs (the generic address space of OpenCL 2.0; PoCL 3.1 lacks it and is refused), else, only when allowed,
/// ILGPU's CPU accelerator: a multithreaded emulator for debugging (~0.4 GFLOP/s), which is correct but never
/// faster than the SIMD backend. Every kind that is absent or refused leaves a reason in <c>notes</c>.
/// The context runs with the default (not fast) math mode; all float arithmetic is explicit (<see cref="IFloatOps"/>).
/// </summary>
public sealed class IlgpuBackend : IComputeBackend
{
    // Rows of c per Gemm launch: progress and cancellation are checked between launches.
    private const int GemmBandRows = 8 * IlgpuKernels.Tile;

    // The CPU emulator runs every thread of a group as an OS thread: its groups are kept to 16 threads
    // (4 x 4 for Gemm, 16 x 16 outputs; one row of 16 lanes for the grouped MatVec).
    private const int CpuGemmThreads = 4;
    private const int CpuGroupSize = 16;

    private static string s_openClLibrary = "libOpenCL.so.1";
    private static int s_resolverInstalled;

    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _add;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int> _gemm;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _matVec;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> _matVecPerRow;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _matVecChunks;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> _matVecSum;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> _biasActivation;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int> _nearestCentroid;

    private IlgpuBackend(Context context, Accelerator accelerator)
    {
        _context = context;
        _accelerator = accelerator;
        // CUDA kernels get explicitly rounded PTX instructions; the CPU accelerator runs .NET code. ILGPU's OpenCL
        // backend has neither (no inline assembly, no fma intrinsic): it gets the managed operations and is refused
        // if they do not compile. Loading compiles every kernel now, so a device that cannot run them is refused
        // at start, not at the first job.
        if (accelerator.AcceleratorType == AcceleratorType.Cuda)
            (_add, _gemm, _matVec, _matVecPerRow, _matVecChunks, _matVecSum, _biasActivation, _nearestCentroid) = Load<PtxOps>(accelerator);
        else
            (_add, _gemm, _matVec, _matVecPerRow, _matVecChunks, _matVecSum, _biasActivation, _nearestCentroid) = Load<ManagedOps>(accelerator);

        Kind = accelerator.AcceleratorType;
        GroupedMatVec = Kind != AcceleratorType.CPU;
        MemoryBytes = Kind == AcceleratorType.CPU ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : accelerator.MemorySize;
        var what = Kind switch
        {
            AcceleratorType.Cuda => "ILGPU CUDA",
            AcceleratorType.OpenCL => "ILGPU OpenCL",
            _ => $"ILGPU CPU accelerator, an emulator; {accelerator.NumMultiprocessors} multiprocessor(s)",
        };
        Device = new DeviceInfo
        {
            Kind = Kind == AcceleratorType.CPU || (accelerator is CLAccelerator cl && cl.DeviceType == CLDeviceType.CL_DEVICE_TYPE_CPU) ? "cpu" : "gpu",
            Name = $"{accelerator.Name.Trim()} ({what})",
            Backend = "ilgpu",
            MemoryMb = MemoryBytes / (1024 * 1024),
        };
    }

    private static (
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>,
        Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>,
        Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>,
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>,
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>,
        Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>,
        Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>,
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int>) Load<T>(Accelerator accelerator)
        where T : struct, IFloatOps => (
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(IlgpuKernels.Add<T>),
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(IlgpuKernels.Gemm<T>),
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(IlgpuKernels.MatVec<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(IlgpuKernels.MatVecPerRow<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(IlgpuKernels.MatVecTransposedChunks<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(IlgpuKernels.MatVecTransposedSum<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(IlgpuKernels.BiasActivation<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int>(IlgpuKernels.NearestCentroid<T>));

    public string Name => "ilgpu";

    public DeviceInfo Device { get; }

    public long MemoryBytes { get; }

    /// <summary>The ILGPU accelerator kind in use (Cuda, OpenCL or CPU).</summary>
    public AcceleratorType Kind { get; }

    /// <summary>
    /// MatVec with 16 threads per row meeting in shared memory (GPUs), or one thread per row (the CPU emulator,
    /// where barriers are slow). Both give the same bytes; tests switch it to run both on the emulator.
    /// </summary>
    public bool GroupedMatVec { get; set; }

    /// <summary>
    /// Opens the first usable accelerator (CUDA, then ILGPU's OpenCL, then, if <paramref name="allowCpu"/>, the CPU
    /// emulator) and adds to <paramref name="notes"/> why each earlier kind was not used. Null when none was.
    /// </summary>
    public static IlgpuBackend? TryOpen(bool allowCpu, string openClLibrary, ICollection<string> notes, int cpuMultiprocessors = 0)
    {
        InstallLibraryResolver(openClLibrary);
        Context? context = null;
        try
        {
            // Not even probed when the machine's only OpenCL driver is PoCL and the emulator is not wanted (auto): PoCL
            // lacks the generic address space ILGPU's OpenCL backend needs, and loading it costs the node tens of MiB.
            var onlyCpu = OpenClDrivers.OnlyCpu(out var drivers);
            var probeOpenCl = allowCpu || !onlyCpu;
            if (!probeOpenCl)
                notes.Add($"ILGPU: OpenCL not probed: the only driver ({drivers}) runs on the CPU and lacks the generic address space ILGPU's OpenCL backend requires");
            // OpenCL(_ => true) lists every OpenCL device, also those ILGPU would hide, so that the refusal can be reported.
            context = Context.Create(builder =>
            {
                builder.Cuda().Math(MathMode.Default).Optimize(OptimizationLevel.O2);
                if (probeOpenCl)
                    builder.OpenCL(_ => true);
            });
            var cuda = context.GetCudaDevices();
            if (cuda.Count == 0)
                notes.Add("ILGPU: no CUDA device (no NVIDIA driver / libcuda.so.1 or no GPU)");
            for (var i = 0; i < cuda.Count; i++)
            {
                if (TryCreate(context, context.GetCudaDevice(i), notes) is { } backend)
                    return backend;
            }
            var openCl = context.GetCLDevices();
            if (openCl.Count == 0 && probeOpenCl)
                notes.Add($"ILGPU: no OpenCL device ({openClLibrary} not loadable or no platform)");
            for (var i = 0; i < openCl.Count; i++)
            {
                var device = context.GetCLDevice(i);
                if (!device.Capabilities.GenericAddressSpace)
                {
                    notes.Add($"ILGPU: OpenCL device '{device.Name.Trim()}' ({device.PlatformName.Trim()}, OpenCL C {device.CVersion}) refused: it lacks the generic address space ILGPU's OpenCL backend requires");
                    continue;
                }
                if (TryCreate(context, device, notes) is { } backend)
                    return backend;
            }
            context.Dispose();
            context = null;
            if (!allowCpu)
            {
                notes.Add("ILGPU: CPU accelerator not used: it is an emulator (~0.4 GFLOP/s) that the SIMD backend always beats, and calibrating it slows every start; set Worker:Backend=ilgpu to run on it");
                return null;
            }
            return CreateCpu(cpuMultiprocessors);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            context?.Dispose();
            notes.Add($"ILGPU unavailable: {ex.GetType().Name}: {ex.Message}");
            return null;
        }
    }

    /// <summary>
    /// ILGPU's CPU accelerator with <paramref name="multiprocessors"/> simulated multiprocessors (groups run at
    /// once; 0 = one per core), each of <see cref="CpuGroupSize"/> threads.
    /// </summary>
    public static IlgpuBackend CreateCpu(int multiprocessors = 0)
    {
        var mp = multiprocessors > 0 ? multiprocessors : Environment.ProcessorCount;
        var device = new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: CpuGroupSize / 4, numMultiprocessors: mp);
        var context = Context.Create(builder => builder.CPU(device).Math(MathMode.Default).Optimize(OptimizationLevel.O2));
        try
        {
            return new IlgpuBackend(context, context.GetCPUDevice(0).CreateCPUAccelerator(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    private static IlgpuBackend? TryCreate(Context context, Device device, ICollection<string> notes)
    {
        Accelerator? accelerator = null;
        try
        {
            accelerator = device.CreateAccelerator(context);
            return new IlgpuBackend(context, accelerator);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            accelerator?.Dispose();
            notes.Add($"ILGPU: {device.AcceleratorType} device '{device.Name.Trim()}' refused: {ex.GetType().Name}: {ex.Message}");
            return null;
        }
    }

    /// <summary>
    /// ILGPU asks the loader for "OpenCL" and "cuda", which on Linux finds only the development symlinks
    /// (libOpenCL.so, libcuda.so); a machine with just the runtimes has the versioned names. The worker's
    /// configured OpenCL loader and libcuda.so.1 are offered when the default lookup fails.
    /// </summary>
    private static void InstallLibraryResolver(string openClLibrary)
    {
        s_openClLibrary = openClLibrary;
        if (Interlocked.Exchange(ref s_resolverInstalled, 1) == 1)
            return;
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
        {
            if (assembly != typeof(Context).Assembly)
                return 0;
            string? candidate = name.Equals("OpenCL", StringComparison.OrdinalIgnoreCase) ? s_openClLibrary
                : name.Equals("cuda", StringComparison.OrdinalIgnoreCase) || name.Equals("nvcuda", StringComparison.OrdinalIgnoreCase) ? "libcuda.so.1"
                : null;
            return candidate is not null && NativeLibrary.TryLoad(candidate, out var handle) ? handle : 0;
        };
    }

    public void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c)
    {
        if (c.Length == 0)
            return;
        using var da = Upload(a.Span[..c.Length]);
        using var db = Upload(b.Span[..c.Length]);
        using var dc = _accelerator.Allocate1D<float>(c.Length);
        _add(c.Length, da.View, db.View, dc.View);
        Download(dc, c.Span);
    }

    public void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress)
    {
        if (m == 0 || n == 0)
            return;
        using var da = Upload(a.Span[..(m * k)]);
        using var db = Upload(b.Span[..(k * n)]);
        using var dc = _accelerator.Allocate1D<float>((long)m * n);
        var threads = Kind == AcceleratorType.CPU ? CpuGemmThreads : IlgpuKernels.Threads;
        var tile = 4 * threads;
        var groupsX = (n + tile - 1) / tile;
        for (var row = 0; row < m; row += GemmBandRows)
        {
            progress.Report((double)row / m);
            var rows = Math.Min(GemmBandRows, m - row);
            var config = new KernelConfig(new Index2D(groupsX, (rows + tile - 1) / tile), new Index2D(threads, threads));
            _gemm(config, da.View, db.View, dc.View, m, k, n, transposeB ? 1 : 0, row);
            _accelerator.Synchronize();
        }
        Download(dc, c.Span[..(m * n)]);
        progress.Report(1);
    }

    public void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose)
    {
        var outputs = transpose ? cols : rows;
        if (outputs == 0)
            return;
        if (rows == 0 || cols == 0)
        {
            // An empty product: every output is the empty chain's +0.
            y.Span[..outputs].Clear();
            return;
        }
        using var da = Upload(a.Span[..(rows * cols)]);
        using var dx = Upload(x.Span[..(transpose ? rows : cols)]);
        using var dy = _accelerator.Allocate1D<float>(outputs);
        if (!transpose)
        {
            if (GroupedMatVec)
            {
                var rowsPerGroup = Kind == AcceleratorType.CPU ? CpuGroupSize / IlgpuKernels.Lanes : IlgpuKernels.MatVecRows;
                var groups = (rows + rowsPerGroup - 1) / rowsPerGroup;
                _matVec(new KernelConfig(groups, rowsPerGroup * IlgpuKernels.Lanes), da.View, dx.View, dy.View, rows, cols);
            }
            else
            {
                _matVecPerRow(rows, da.View, dx.View, dy.View, cols);
            }
        }
        else
        {
            var chunks = (rows + IlgpuKernels.Chunk - 1) / IlgpuKernels.Chunk;
            using var partial = _accelerator.Allocate1D<float>((long)chunks * cols);
            _matVecChunks(chunks * cols, da.View, dx.View, partial.View, rows, cols);
            _matVecSum(cols, partial.View, dy.View, chunks, cols);
        }
        Download(dy, y.Span[..outputs]);
    }

    public void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation)
    {
        if (!Enum.IsDefined(activation))
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
        var count = rows * cols;
        if (count == 0)
            return;
        using var dc = Upload(c.Span[..count]);
        using var db = Upload(bias.Span[..cols]);
        _biasActivation(count, dc.View, db.View, cols, (int)activation);
        Download(dc, c.Span[..count]);
    }

    public void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels)
    {
        if (n == 0)
            return;
        using var dp = Upload(points.Span[..(n * d)]);
        using var dq = Upload(centroids.Span[..(k * d)]);
        using var dl = _accelerator.Allocate1D<int>(n);
        _nearestCentroid(n, dp.View, dq.View, dl.View, d, k);
        _accelerator.Synchronize();
        ((ArrayView<int>)dl.View).CopyToCPU(labels.Span[..n]);
    }

    // A zero-length buffer is given one element: ILGPU views of length 0 cannot be passed to every accelerator.
    private MemoryBuffer1D<float, Stride1D.Dense> Upload(ReadOnlySpan<float> data)
    {
        var buffer = _accelerator.Allocate1D<float>(Math.Max(1, data.Length));
        if (data.Length > 0)
            ((ArrayView<float>)buffer.View).SubView(0, data.Length).CopyFromCPU(data);
        return buffer;
    }

    private void Download(MemoryBuffer1D<float, Stride1D.Dense> buffer, Span<float> target)
    {
        _accelerator.Synchronize();
        ((ArrayView<float>)buffer.View).SubView(0, target.Length).CopyToCPU(target);
    }

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }
}
