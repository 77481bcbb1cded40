using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// The float operations of the ILGPU kernels, each with an explicit rounding so that nothing can be contracted
/// (KERNEL-RULES.md). ILGPU 1.5.3 emits a plain <c>a + b</c> as <c>add.f32</c> and <c>a * b</c> as <c>mul.f32</c>,
/// which ptxas is free to fuse into an fma, and it has no float fma intrinsic at all: <c>MathF.FusedMultiplyAdd</c>
/// compiles to a call of an undefined external function. On CUDA these methods therefore emit the PTX instruction
/// itself (<c>add.rn.f32</c>, <c>fma.rn.f32</c>...; round to nearest even, no <c>.ftz</c>, which ptxas never
/// contracts). Everywhere else (the CPU accelerator runs the .NET code) they are the plain C# operations, which
/// RyuJIT never contracts, and <see cref="MathF.FusedMultiplyAdd"/>, which is correctly rounded.
/// </summary>
public static class Rn
{
    public static float Add(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a + b;
    }

    public static float Sub(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("sub.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a - b;
    }

    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a * b;
    }

    public static float Div(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("div.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a / b;
    }

    /// <summary>a·b + c rounded once.</summary>
    public static float Fma(float a, float b, float c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float r, a, b, c);
            return r;
        }
        return MathF.FusedMultiplyAdd(a, b, c);
    }

    /// <summary>The bits of a float (BitConverter is not compiled by ILGPU; Interop is, on every accelerator).</summary>
    public static int Bits(float value) => (int)Interop.FloatAsInt(value);

    public static float FromBits(int bits) => Interop.IntAsFloat((uint)bits);
}
