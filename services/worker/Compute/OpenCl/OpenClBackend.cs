using System.Buffers;
using System.Text;
using Platform.Contracts.Messages;
using static Platform.Worker.Compute.OpenCl.OpenClNative;

namespace Platform.Worker.Compute.OpenCl;

/// <summary>
/// The primitives as OpenCL kernels on one device (a GPU if there is one, else a CPU through e.g. PoCL).
/// The program is built once per backend and its kernels kept; host memory is wrapped with
/// CL_MEM_USE_HOST_PTR, which is zero-copy on a CPU device and an implicit transfer on a GPU. One in-order
/// queue is shared, so calls are serialised by a lock (kernel arguments are per cl_kernel, not per call).
/// </summary>
public sealed unsafe class OpenClBackend : IComputeBackend
{
    // Gemm register tile (GEMM_MR x GEMM_NR outputs per inner step), row panels per work-item and k step;
    // passed to gemm.cl as -D options so this is the one place they are set.
    private const int Mr = 8;
    private const int Nr = 16;
    private const int Mb = 8;
    private const int Kc = 256;
    private const int PackChunk = 64;   // PACK_CHUNK in gemm.cl
    private const int AddChunk = 4096;  // ADD_CHUNK in elementwise.cl
    // Row-wise kernels give each work-item about this many floats: PoCL runs a work-group as one task, so a
    // work-item per row would be dominated by scheduling when rows are short.
    private const int ItemFloats = 16384;
    private const int MatVecChunkRows = 4096;  // MATVEC_T_CHUNK in matvec.cl: fixed by docs/KERNELS.md

    // The build options docs/KERNELS.md requires: correctly rounded division, and none of -cl-fast-relaxed-math,
    // -cl-mad-enable, -cl-unsafe-math-optimizations or -cl-denorms-are-zero (contraction is off by pragma in every
    // .cl file). Part of PoCL's cache key, like the source, so a changed kernel is never served from the cache.
    internal const string ReproducibleOptions = "-cl-fp32-correctly-rounded-divide-sqrt";

    // Gemm is enqueued in pieces of about this many flops, so that a cancelled attempt stops within one piece:
    // ~12 ms at the ~170 GFLOP/s PoCL reaches on two Zen 4 cores, still under 200 ms at 10 GFLOP/s.
    private const double PieceFlops = 2e9;

    private readonly Lock _gate = new();
    private readonly nint _context;
    private readonly nint _queue;
    private readonly nint _program;
    private readonly nint _add, _biasActivation, _matVec, _matVecPartial, _matVecSum, _nearestCentroid, _pack, _gemm;
    private bool _disposed;

    private OpenClBackend(nint platform, nint device)
    {
        var platformName = InfoString(platform, PlatformName, isDevice: false);
        var deviceName = InfoString(device, DeviceName, isDevice: true);
        var type = InfoValue<ulong>(device, DeviceType);
        var globalMem = (long)InfoValue<ulong>(device, DeviceGlobalMemSize);
        MaxAllocationBytes = (long)InfoValue<ulong>(device, DeviceMaxMemAllocSize);
        // Bitwise-reproducible results need IEEE subnormals and a correctly rounded division (docs/KERNELS.md): a
        // device without them would give other bytes than every other backend, so it is not used.
        var fp = InfoValue<ulong>(device, DeviceSingleFpConfig);
        if ((fp & FpDenorm) == 0)
            throw new InvalidOperationException($"{deviceName} flushes float32 subnormals to zero: not a reproducible backend");
        if ((fp & FpCorrectlyRoundedDivideSqrt) == 0)
            throw new InvalidOperationException($"{deviceName} has no correctly rounded float32 division: not a reproducible backend");
        // Gemm holds packed copies of its operands next to them, so about half the device is usable; every
        // buffer must also fit one allocation.
        MemoryBytes = Math.Min(globalMem / 2, MaxAllocationBytes);
        Device = new DeviceInfo
        {
            Kind = (type & DeviceTypeGpu) != 0 ? "gpu" : "cpu",
            Name = $"{deviceName} ({platformName})",
            Backend = "opencl",
            MemoryMb = globalMem / (1024 * 1024),
        };

        int error;
        _context = clCreateContext(null, 1, &device, 0, 0, &error);
        Check(error, "clCreateContext");
        try
        {
            _queue = clCreateCommandQueue(_context, device, 0, &error);
            Check(error, "clCreateCommandQueue");
            _program = BuildProgram(_context, device);
            _add = CreateKernel("add");
            _biasActivation = CreateKernel("bias_activation");
            _matVec = CreateKernel("matvec");
            _matVecPartial = CreateKernel("matvec_t_partial");
            _matVecSum = CreateKernel("matvec_t_sum");
            _nearestCentroid = CreateKernel("nearest_centroid");
            _pack = CreateKernel("pack_panels");
            _gemm = CreateKernel("gemm_packed");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name => "opencl";

    public DeviceInfo Device { get; }

    public long MemoryBytes { get; }

    /// <summary>CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single buffer the device accepts.</summary>
    public long MaxAllocationBytes { get; }

    /// <summary>
    /// Opens OpenCL, picks a device (the first GPU, else the first CPU, else the first of any type), builds the
    /// kernels and runs each once. Returns null with the reason when OpenCL or a device is missing or the build
    /// fails. <paramref name="cacheDirectory"/> becomes POCL_CACHE_DIR, so PoCL's compiled kernels survive restarts;
    /// it only takes effect if OpenCL has not been initialised earlier in the process.
    /// </summary>
    public static OpenClBackend? TryCreate(string libraryName, string? cacheDirectory, out string reason, bool allowCpu = true)
    {
        try
        {
            if (cacheDirectory is not null)
            {
                Directory.CreateDirectory(cacheDirectory);
                SetNativeEnvironment("POCL_CACHE_DIR", Path.GetFullPath(cacheDirectory));
            }
            if (!TryLoad(libraryName))
            {
                reason = $"{libraryName} not found";
                return null;
            }

            // The loader is small; the drivers load at the first call into it: not at all when the only one is the CPU's.
            if (!allowCpu && OpenClDrivers.OnlyCpu(out var drivers))
            {
                reason = $"its only driver ({drivers}) runs on this machine's CPU, which the SIMD backend uses at the same speed, while the "
                    + "OpenCL runtime would hold about 180 MiB of the node's memory; Worker:Backend=opencl opens it";
                return null;
            }
            uint platformCount;
            var error = clGetPlatformIDs(0, null, &platformCount);
            if (error != Success || platformCount == 0)
            {
                reason = $"no OpenCL platform (error {error})";
                return null;
            }
            var platforms = new nint[platformCount];
            fixed (nint* p = platforms)
                Check(clGetPlatformIDs(platformCount, p, null), "clGetPlatformIDs");

            var chosen = FindDevice(platforms, DeviceTypeGpu) ?? FindDevice(platforms, DeviceTypeAccelerator)
                ?? (allowCpu ? FindDevice(platforms, DeviceTypeCpu) ?? FindDevice(platforms, DeviceTypeAll) : null);
            if (chosen is not var (platform, device))
            {
                reason = allowCpu || FindDevice(platforms, DeviceTypeCpu) is null ? "no devices"
                    : "its only device is this machine's CPU, which the SIMD backend runs on at the same speed, while the OpenCL "
                      + "runtime would hold about 180 MiB of the node's memory; Worker:Backend=opencl opens it";
                return null;
            }
            var backend = new OpenClBackend(platform, device);
            try
            {
                backend.WarmUp();
            }
            catch
            {
                backend.Dispose();
                throw;
            }
            reason = backend.Device.Name;
            return backend;
        }
        catch (Exception e)
        {
            reason = e.Message;
            return null;
        }
    }

    public void Add(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c)
    {
        var n = c.Length;
        if (n == 0)
            return;
        lock (_gate)
        {
            using var call = new Call(this);
            var bufferC = call.Output(c);
            SetArgs(_add, call.Input(a), call.Input(b), bufferC, n);
            Launch(_add, (nuint)((n + AddChunk - 1) / AddChunk), 1);
            call.ReadBack(bufferC, (long)n * sizeof(float));
        }
    }

    public void Gemm(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, Memory<float> c, int m, int k, int n, bool transposeB, ComputeProgress progress)
    {
        // A single row or column goes through the packed kernel too (padded to a tile): a matrix-vector shortcut
        // would add in DOT16's or the chunked order, not GEMM's one chain over k.
        if (m == 0 || n == 0 || k == 0)
        {
            // An empty sum is +0.
            c.Span[..(m * n)].Clear();
            progress.Report(1);
            return;
        }

        int rowPanels = (m + Mr - 1) / Mr, columnPanels = (n + Nr - 1) / Nr;
        int rowBlocks = (rowPanels + Mb - 1) / Mb, ldc = columnPanels * Nr;
        progress.Report(0);
        lock (_gate)
        {
            using var call = new Call(this);
            var packedA = call.Scratch((long)rowPanels * Mr * k * sizeof(float));
            var packedB = call.Scratch((long)columnPanels * Nr * k * sizeof(float));
            var paddedC = call.Scratch((long)rowPanels * Mr * ldc * sizeof(float));
            Pack(call.Input(a), packedA, m, k, Mr, k, 1);
            Pack(call.Input(b), packedB, n, k, Nr, transposeB ? k : 1, transposeB ? 1 : n);

            // A piece is a rectangle of work-items (row blocks x column panels) over a range of k; k is only
            // split when even two work-items' full depth would exceed the budget.
            var cellFlops = 2.0 * Mb * Mr * Nr * k;
            var kSplit = (int)Math.Min(Math.Ceiling(2 * cellFlops / PieceFlops), (k + Kc - 1) / Kc);
            var kStep = ((k + kSplit - 1) / kSplit + Kc - 1) / Kc * Kc;
            var cells = Math.Max(2L, (long)(PieceFlops / (2.0 * Mb * Mr * Nr * kStep)));
            var columnsPerPiece = (int)Math.Min(columnPanels, cells);
            var rowsPerPiece = (int)Math.Min(rowBlocks, Math.Max(1, cells / columnsPerPiece));
            long total = (long)((k + kStep - 1) / kStep) * ((rowBlocks + rowsPerPiece - 1) / rowsPerPiece)
                * ((columnPanels + columnsPerPiece - 1) / columnsPerPiece);
            long done = 0;
            for (var k0 = 0; k0 < k; k0 += kStep)
            {
                for (var r0 = 0; r0 < rowBlocks; r0 += rowsPerPiece)
                {
                    for (var c0 = 0; c0 < columnPanels; c0 += columnsPerPiece)
                    {
                        SetArgs(_gemm, packedA, packedB, paddedC, k, ldc, rowPanels, c0, r0, k0, Math.Min(k, k0 + kStep));
                        Launch(_gemm, (nuint)Math.Min(columnsPerPiece, columnPanels - c0), 1,
                            (nuint)Math.Min(rowsPerPiece, rowBlocks - r0), 1);
                        Check(clFinish(_queue), "clFinish");
                        progress.Report((double)++done / total);
                    }
                }
            }

            using var pin = c.Pin();
            nuint* origin = stackalloc nuint[3];
            nuint* region = stackalloc nuint[] { (nuint)n * sizeof(float), (nuint)m, 1 };
            origin[0] = origin[1] = origin[2] = 0;
            Check(clEnqueueReadBufferRect(_queue, paddedC, 1, origin, origin, region, (nuint)ldc * sizeof(float), 0,
                (nuint)n * sizeof(float), 0, pin.Pointer, 0, null, null), "clEnqueueReadBufferRect");
        }
    }

    public void MatVec(ReadOnlyMemory<float> a, ReadOnlyMemory<float> x, Memory<float> y, int rows, int cols, bool transpose)
    {
        lock (_gate)
        {
            using var call = new Call(this);
            var bufferY = call.Output(y);
            if ((transpose ? cols : rows) == 0)
                return;
            if (transpose && rows == 0)
            {
                // No chunks: an empty sum is +0.
                y.Span[..cols].Clear();
                return;
            }
            if (transpose)
            {
                var chunks = (rows + MatVecChunkRows - 1) / MatVecChunkRows;
                var partial = call.Scratch((long)chunks * cols * sizeof(float));
                var columnBlocks = (nuint)((cols + 15) / 16);
                SetArgs(_matVecPartial, call.Input(a), call.Input(x), partial, rows, cols);
                Launch(_matVecPartial, (nuint)((cols + 31) / 32), 1, (nuint)chunks, 1);
                SetArgs(_matVecSum, partial, bufferY, chunks, cols);
                Launch(_matVecSum, columnBlocks, 1);
            }
            else
            {
                var perItem = PerItem(cols);
                SetArgs(_matVec, call.Input(a), call.Input(x), bufferY, rows, cols, perItem);
                Launch(_matVec, Items(rows, perItem), 1);
            }
            call.ReadBack(bufferY, (long)(transpose ? cols : rows) * sizeof(float));
        }
    }

    public void BiasActivation(Memory<float> c, int rows, int cols, ReadOnlyMemory<float> bias, Activation activation)
    {
        if ((long)rows * cols == 0)
            return;
        lock (_gate)
        {
            using var call = new Call(this);
            var bufferC = call.Output(c);
            var perItem = PerItem(cols);
            SetArgs(_biasActivation, bufferC, call.Input(bias), rows, cols, (int)activation, perItem);
            Launch(_biasActivation, Items(rows, perItem), 1);
            call.ReadBack(bufferC, (long)rows * cols * sizeof(float));
        }
    }

    public void NearestCentroid(ReadOnlyMemory<float> points, int n, int d, ReadOnlyMemory<float> centroids, int k, Memory<int> labels)
    {
        if (n == 0)
            return;
        // centroid.cl reads the centroids packed [block][dimension][lane], lane l of block b holding centroid
        // l·blocks + b, NaN past k (a NaN distance never wins).
        var blocks = Math.Max(1, (k + 15) / 16);
        var packed = new float[Math.Max(1, blocks * d * 16)];
        var source = centroids.Span;
        for (var block = 0; block < blocks; block++)
        {
            for (var j = 0; j < d; j++)
            {
                for (var lane = 0; lane < 16; lane++)
                {
                    var centroid = (lane * blocks) + block;
                    packed[(((block * d) + j) * 16) + lane] = centroid < k ? source[(centroid * d) + j] : float.NaN;
                }
            }
        }
        lock (_gate)
        {
            using var call = new Call(this);
            var bufferLabels = call.Output(labels);
            var perItem = PerItem((long)k * d);
            SetArgs(_nearestCentroid, call.Input(points), n, d, call.Input<float>(packed), blocks, bufferLabels, perItem);
            Launch(_nearestCentroid, Items(n, perItem), 1);
            call.ReadBack(bufferLabels, (long)n * sizeof(int));
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (var kernel in (ReadOnlySpan<nint>)[_add, _biasActivation, _matVec, _matVecPartial, _matVecSum, _nearestCentroid, _pack, _gemm])
            {
                if (kernel != 0)
                    _ = clReleaseKernel(kernel);
            }
            if (_program != 0)
                _ = clReleaseProgram(_program);
            if (_queue != 0)
                _ = clReleaseCommandQueue(_queue);
            if (_context != 0)
                _ = clReleaseContext(_context);
        }
    }

    /// <summary>
    /// Runs every kernel once on tiny inputs: PoCL compiles each kernel again for its work-group size at first
    /// launch, and that should happen here rather than inside a timed attempt.
    /// </summary>
    private void WarmUp()
    {
        float[] a = [1, 2, 3, 4], b = [5, 6, 7, 8], c = new float[4];
        Add(a, b, c);
        Gemm(a, b, c, 2, 2, 2, transposeB: false, ComputeProgress.None);
        MatVec(a, b.AsMemory(0, 2), c.AsMemory(0, 2), 2, 2, transpose: false);
        MatVec(a, b.AsMemory(0, 2), c.AsMemory(0, 2), 2, 2, transpose: true);
        BiasActivation(c, 2, 2, b.AsMemory(0, 2), Activation.Sigmoid);
        NearestCentroid(a, 2, 2, b, 2, new int[2]);
    }

    private void Pack(nint source, nint destination, int count, int depth, int width, long stridePanel, long strideDepth)
    {
        SetArgs(_pack, source, destination, count, depth, width, stridePanel, strideDepth);
        Launch(_pack, (nuint)((depth + PackChunk - 1) / PackChunk), 1, (nuint)((count + width - 1) / width), 1);
    }

    private static nint BuildProgram(nint context, nint device)
    {
        var assembly = typeof(OpenClBackend).Assembly;
        var names = assembly.GetManifestResourceNames()
            .Where(name => name.EndsWith(".cl", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (names.Length == 0)
            throw new InvalidOperationException("no embedded OpenCL kernel sources (*.cl)");
        // The files form one program, so they are simply joined.
        var source = new StringBuilder();
        foreach (var name in names)
        {
            using var reader = new StreamReader(assembly.GetManifestResourceStream(name)!, Encoding.UTF8);
            source.Append(reader.ReadToEnd()).Append('\n');
        }
        var bytes = Encoding.UTF8.GetBytes(source.ToString());

        int error;
        nint program;
        fixed (byte* text = bytes)
        {
            var length = (nuint)bytes.Length;
            program = clCreateProgramWithSource(context, 1, &text, &length, &error);
        }
        Check(error, "clCreateProgramWithSource");
        var options = $"{ReproducibleOptions} -DGEMM_MR={Mr} -DGEMM_NR={Nr} -DGEMM_MB={Mb} -DGEMM_KC={Kc}";
        error = clBuildProgram(program, 1, &device, options, 0, 0);
        if (error != Success)
        {
            var log = BuildLog(program, device);
            _ = clReleaseProgram(program);
            throw new InvalidOperationException($"clBuildProgram failed: {ErrorName(error)} ({error})\n{log}");
        }
        return program;
    }

    private static string BuildLog(nint program, nint device)
    {
        nuint size;
        if (clGetProgramBuildInfo(program, device, ProgramBuildLog, 0, null, &size) != Success || size == 0)
            return "";
        var log = new byte[size];
        fixed (byte* p = log)
            _ = clGetProgramBuildInfo(program, device, ProgramBuildLog, size, p, null);
        return Encoding.UTF8.GetString(log).TrimEnd('\0', '\n', ' ');
    }

    private nint CreateKernel(string name)
    {
        int error;
        var kernel = clCreateKernel(_program, name, &error);
        Check(error, $"clCreateKernel({name})");
        return kernel;
    }

    private static (nint Platform, nint Device)? FindDevice(nint[] platforms, ulong type)
    {
        foreach (var platform in platforms)
        {
            nint device;
            uint count;
            // CL_DEVICE_NOT_FOUND just means this platform has none of the type.
            if (clGetDeviceIDs(platform, type, 1, &device, &count) == Success && count > 0)
                return (platform, device);
        }
        return null;
    }

    private static string InfoString(nint handle, uint param, bool isDevice)
    {
        nuint size;
        Check(isDevice ? clGetDeviceInfo(handle, param, 0, null, &size) : clGetPlatformInfo(handle, param, 0, null, &size), "clGet*Info");
        var bytes = new byte[size];
        fixed (byte* p = bytes)
            Check(isDevice ? clGetDeviceInfo(handle, param, size, p, null) : clGetPlatformInfo(handle, param, size, p, null), "clGet*Info");
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0').Trim();
    }

    private static T InfoValue<T>(nint device, uint param) where T : unmanaged
    {
        T value;
        Check(clGetDeviceInfo(device, param, (nuint)sizeof(T), &value, null), "clGetDeviceInfo");
        return value;
    }

    private static int PerItem(long floatsPerRow) => (int)Math.Max(1, ItemFloats / Math.Max(1, floatsPerRow));

    private static nuint Items(int rows, int perItem) => (nuint)((rows + perItem - 1) / perItem);

    private void Launch(nint kernel, nuint global, nuint local)
    {
        Check(clEnqueueNDRangeKernel(_queue, kernel, 1, null, &global, &local, 0, null, null), "clEnqueueNDRangeKernel");
    }

    private void Launch(nint kernel, nuint global0, nuint local0, nuint global1, nuint local1)
    {
        nuint* global = stackalloc nuint[] { global0, global1 };
        nuint* local = stackalloc nuint[] { local0, local1 };
        Check(clEnqueueNDRangeKernel(_queue, kernel, 2, null, global, local, 0, null, null), "clEnqueueNDRangeKernel");
    }

    private static void SetArgs(nint kernel, params ReadOnlySpan<Arg> args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var value = args[i].Value;
            Check(clSetKernelArg(kernel, (uint)i, (nuint)args[i].Size, &value), "clSetKernelArg");
        }
    }

    /// <summary>A kernel argument: a buffer handle, an int or a long, passed by value.</summary>
    private readonly struct Arg
    {
        public readonly long Value;
        public readonly int Size;

        private Arg(long value, int size) => (Value, Size) = (value, size);

        public static implicit operator Arg(nint buffer) => new(buffer, sizeof(nint));

        public static implicit operator Arg(int value) => new(value, sizeof(int));

        public static implicit operator Arg(long value) => new(value, sizeof(long));
    }

    /// <summary>The buffers and pins of one call, all released when it ends. Created under the backend's lock.</summary>
    private sealed class Call : IDisposable
    {
        private readonly OpenClBackend _backend;
        private readonly List<nint> _buffers = [];
        private readonly List<MemoryHandle> _pins = [];

        public Call(OpenClBackend backend)
        {
            ObjectDisposedException.ThrowIf(backend._disposed, backend);
            _backend = backend;
        }

        public nint Input<T>(ReadOnlyMemory<T> memory) where T : unmanaged
        {
            var pin = memory.Pin();
            _pins.Add(pin);
            return Create(MemReadOnly | MemUseHostPtr, (long)memory.Length * sizeof(T), pin.Pointer);
        }

        public nint Output<T>(Memory<T> memory) where T : unmanaged
        {
            var pin = memory.Pin();
            _pins.Add(pin);
            return Create(MemReadWrite | MemUseHostPtr, (long)memory.Length * sizeof(T), pin.Pointer);
        }

        public nint Scratch(long bytes) => Create(MemReadWrite, bytes, null);

        /// <summary>
        /// Waits for the queue and makes an output's host memory current: mapping a USE_HOST_PTR buffer is the
        /// synchronisation point OpenCL defines for it (no copy on a CPU device).
        /// </summary>
        public void ReadBack(nint buffer, long bytes)
        {
            if (bytes == 0)
                return;
            int error;
            var mapped = clEnqueueMapBuffer(_backend._queue, buffer, 1, MapRead, 0, (nuint)bytes, 0, null, null, &error);
            Check(error, "clEnqueueMapBuffer");
            Check(clEnqueueUnmapMemObject(_backend._queue, buffer, mapped, 0, null, null), "clEnqueueUnmapMemObject");
            Check(clFinish(_backend._queue), "clFinish");
        }

        public void Dispose()
        {
            // Nothing may still be using the buffers (a call that threw left its kernels queued).
            _ = clFinish(_backend._queue);
            foreach (var buffer in _buffers)
                _ = clReleaseMemObject(buffer);
            foreach (var pin in _pins)
                pin.Dispose();
        }

        private nint Create(ulong flags, long bytes, void* host)
        {
            int error;
            // OpenCL rejects empty buffers; a zero-length operand is never read, so one element stands in.
            var buffer = bytes == 0
                ? clCreateBuffer(_backend._context, MemReadWrite, sizeof(float), null, &error)
                : clCreateBuffer(_backend._context, flags, (nuint)bytes, host, &error);
            Check(error, "clCreateBuffer");
            _buffers.Add(buffer);
            return buffer;
        }
    }
}
