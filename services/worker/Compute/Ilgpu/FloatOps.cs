using ILGPU.Runtime.Cuda;

namespace Platform.Worker.Compute.Ilgpu;

/// <summary>
/// The float operations of the ILGPU kernels. The kernels are generic over it and ILGPU specialises them per
/// implementation (a struct, so every call is resolved and inlined at compile time), giving one kernel source
/// with the exact arithmetic each accelerator needs (the rules of docs/KERNELS.md).
/// </summary>
public interface IFloatOps
{
    float Add(float a, float b);

    float Sub(float a, float b);

    float Mul(float a, float b);

    float Div(float a, float b);

    /// <summary>a·b + c rounded once.</summary>
    float Fma(float a, float b, float c);
}

/// <summary>
/// For CUDA: each operation is the PTX instruction with an explicit round-to-nearest-even (<c>add.rn.f32</c>,
/// <c>fma.rn.f32</c>...; no <c>.ftz</c>), which ptxas never contracts. ILGPU 1.5.3 on its own emits a plain
/// <c>a + b</c> as <c>add.f32</c> and <c>a * b</c> as <c>mul.f32</c>, which ptxas may fuse into an fma, and has no
/// float fma intrinsic: <c>MathF.FusedMultiplyAdd</c> becomes a call of an undefined external function, so it must
/// not appear in a CUDA kernel even on a branch never taken.
/// </summary>
public readonly struct PtxOps : IFloatOps
{
    public float Add(float a, float b)
    {
        CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float r, a, b);
        return r;
    }

    public float Sub(float a, float b)
    {
        CudaAsm.Emit("sub.rn.f32 %0, %1, %2;", out float r, a, b);
        return r;
    }

    public float Mul(float a, float b)
    {
        CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float r, a, b);
        return r;
    }

    public float Div(float a, float b)
    {
        CudaAsm.Emit("div.rn.f32 %0, %1, %2;", out float r, a, b);
        return r;
    }

    public float Fma(float a, float b, float c)
    {
        CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float r, a, b, c);
        return r;
    }
}

/// <summary>
/// For the CPU accelerator, which runs the kernels' .NET code: plain C# operations (RyuJIT never contracts them)
/// and <see cref="MathF.FusedMultiplyAdd"/> (correctly rounded).
/// </summary>
public readonly struct ManagedOps : IFloatOps
{
    public float Add(float a, float b) => a + b;

    public float Sub(float a, float b) => a - b;

    public float Mul(float a, float b) => a * b;

    public float Div(float a, float b) => a / b;

    public float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
}
