using Platform.Testing.Kernels;
using Platform.Worker.Compute;
using Platform.Worker.Compute.OpenCl;
using Platform.Worker.Compute.Simd;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Both backends, opened once for the test class, and the SIMD backend also pinned to one and to two threads (the
/// reproducibility tests need every thread count to give the same bytes). OpenCL must be present here:
/// ./platform test installs PoCL, so a missing driver is a failure of the setup, not a reason to skip.
/// </summary>
public sealed class Backends : IDisposable
{
    public Backends()
    {
        Simd = new SimdBackend();
        Simd1 = new SimdBackend(threads: 1);
        Simd2 = new SimdBackend(threads: 2);
        OpenCl = OpenClBackend.TryCreate("libOpenCL.so.1", KernelCache.Directory, out var reason)
            ?? throw new InvalidOperationException($"OpenCL is not usable on this machine ({reason}); install pocl-opencl-icd and ocl-icd-libopencl1");
    }

    public IComputeBackend Simd1 { get; }

    public IComputeBackend Simd2 { get; }

    /// <summary>Every backend and thread count that must agree to the bit, with a label for messages.</summary>
    public IReadOnlyList<(string Label, IComputeBackend Backend)> All =>
        [("simd(default threads)", Simd), ("simd(1 thread)", Simd1), ("simd(2 threads)", Simd2), ("opencl", OpenCl)];

    public IComputeBackend Simd { get; }

    public IComputeBackend OpenCl { get; }

    public IComputeBackend this[string name] => name switch
    {
        "simd" => Simd,
        "opencl" => OpenCl,
        _ => throw new ArgumentException(name, nameof(name)),
    };

    public void Dispose()
    {
        Simd.Dispose();
        Simd1.Dispose();
        Simd2.Dispose();
        OpenCl.Dispose();
    }
}
