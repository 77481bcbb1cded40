using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Platform.Worker.Compute.Ilgpu;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Every ILGPU kernel compiles to PTX (ILGPU's PTX backend needs no GPU), and the PTX keeps the rules of docs/KERNELS.md:
/// every float add/sub/mul/fma/div carries an explicit .rn rounding (ptxas never contracts those; a bare
/// add.f32 / mul.f32 it may fuse), accumulations are fma.rn.f32, nothing is .approx or .ftz, and no call is left
/// to an undefined function (ILGPU 1.5.3 turns MathF.FusedMultiplyAdd into one).
/// </summary>
public sealed partial class IlgpuPtxTests(ITestOutputHelper output)
{
    public static TheoryData<string> Kernels()
    {
        var data = new TheoryData<string>();
        foreach (var (method, _) in IlgpuKernels.All)
            data.Add(method.Name);
        return data;
    }

    // add.f32, add.rn.f32, fma.rn.ftz.f32, div.approx.f32, mad.f32, rcp.approx.ftz.f32 ...: every float arithmetic instruction.
    [GeneratedRegex(@"^\s*(?:@%p\d+\s+)?(?<op>(?:add|sub|mul|mad|fma|div|rcp|sqrt|rsqrt|ex2|lg2|sin|cos|tanh)(?:\.[a-z0-9]+)*\.f32)\s", RegexOptions.Multiline)]
    private static partial Regex FloatArithmetic();

    internal static string CompilePtx(MethodInfo kernel, bool grouped)
    {
        using var context = Context.Create(builder => builder.Math(MathMode.Default).Optimize(OptimizationLevel.O2));
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_75), CudaArchitecture.SM_75, CudaInstructionSet.ISA_75, nvvmAPI: null);
        // The CUDA specialisation, as IlgpuBackend loads it on a CUDA device.
        var closed = kernel.MakeGenericMethod(typeof(PtxOps));
        var entry = grouped ? EntryPointDescription.FromExplicitlyGroupedKernel(closed) : EntryPointDescription.FromImplicitlyGroupedKernel(closed);
        return ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_compiles_to_ptx_with_explicitly_rounded_float_arithmetic_only(string name)
    {
        var (method, grouped) = IlgpuKernels.All.Single(k => k.Method.Name == name);

        var ptx = CompilePtx(method, grouped);

        var ops = FloatArithmetic().Matches(ptx).Select(m => m.Groups["op"].Value).ToList();
        output.WriteLine($"{name}: {ptx.Length} characters of PTX; float ops: {string.Join(", ", ops.GroupBy(o => o).Select(g => $"{g.Key} x{g.Count()}"))}");
        Assert.Contains(".target sm_75", ptx);
        Assert.DoesNotContain(".extern .func", ptx);
        Assert.DoesNotContain(".approx", ptx);
        Assert.DoesNotContain(".ftz", ptx);
        Assert.NotEmpty(ops);
        Assert.All(ops, op => Assert.True(op is "add.rn.f32" or "sub.rn.f32" or "mul.rn.f32" or "fma.rn.f32" or "div.rn.f32", $"{name}: '{op}' is not an explicitly rounded IEEE operation"));
        if (name != nameof(IlgpuKernels.Add) && name != nameof(IlgpuKernels.MatVecTransposedSum))
            Assert.Contains("fma.rn.f32", ops);
        if (name == nameof(IlgpuKernels.BiasActivation))
            Assert.Contains("div.rn.f32", ops);
    }
}
