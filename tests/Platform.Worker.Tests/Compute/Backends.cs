using Platform.Testing.Kernels;
using Platform.Worker.Compute;
using Platform.Worker.Compute.OpenCl;
using Platform.Worker.Compute.Simd;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Both backends, opened once for the test class. OpenCL must be present here: ./platform test installs PoCL,
/// so a missing driver is a failure of the setup, not a reason to skip.
/// </summary>
public sealed class Backends : IDisposable
{
    public Backends()
    {
        Simd = new SimdBackend();
        OpenCl = OpenClBackend.TryCreate("libOpenCL.so.1", KernelCache.Directory, out var reason)
            ?? throw new InvalidOperationException($"OpenCL is not usable on this machine ({reason}); install pocl-opencl-icd and ocl-icd-libopencl1");
    }

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
        OpenCl.Dispose();
    }
}
