using Platform.Contracts.Tensors;

namespace Platform.Contracts.Kernels;

/// <summary>Shape and type of one tensor, as read from its .npy header.</summary>
public sealed record TensorInfo(NpyDType DType, int[] Shape)
{
    public string Describe() => $"{(DType == NpyDType.Float32 ? "float32" : "int32")}[{string.Join(",", Shape)}]";
}

/// <summary>What a valid job will produce and how much work it is.</summary>
public sealed record KernelPlan(IReadOnlyDictionary<string, TensorInfo> Outputs, double Gflop);

/// <summary>
/// The kernels workers may run (no user code ever runs on an operator's machine). The gateway checks a job
/// against this before accepting it, and the worker checks again before allocating anything, so both
/// give the same reasons.
/// </summary>
public static class KernelCatalog
{
    public const string VectorAdd = "vector-add";
    public const string Matmul = "matmul";

    public static IReadOnlyList<string> Names { get; } = [VectorAdd, Matmul];

    public static bool IsKnown(string? kernel) => kernel is not null && Names.Contains(kernel);

    /// <summary>The input names a kernel takes, in order.</summary>
    public static IReadOnlyList<string> InputNames(string kernel) => kernel switch
    {
        VectorAdd or Matmul => ["a", "b"],
        _ => throw new ArgumentException($"unknown kernel '{kernel}'", nameof(kernel)),
    };

    /// <summary>
    /// Validates a job's inputs and parameters; returns the plan, or the reason it cannot run as a sentence
    /// a client can act on.
    /// </summary>
    public static KernelPlan Plan(string kernel, IReadOnlyDictionary<string, TensorInfo> inputs, IReadOnlyDictionary<string, string> parameters, out string? error)
    {
        error = CheckNames(kernel, inputs.Keys.ToList(), parameters);
        if (error is not null)
            return Empty;
        return kernel switch
        {
            VectorAdd => PlanVectorAdd(inputs["a"], inputs["b"], out error),
            Matmul => PlanMatmul(inputs["a"], inputs["b"], out error),
            _ => Fail($"unknown kernel '{kernel}'", out error),
        };
    }

    /// <summary>Checks names only (kernel, input names, parameter names): what can be known without the blobs.</summary>
    public static string? CheckNames(string kernel, IReadOnlyCollection<string> inputNames, IReadOnlyDictionary<string, string> parameters)
    {
        if (!IsKnown(kernel))
            return $"unknown kernel '{kernel}'; available kernels: {string.Join(", ", Names)}";
        var expected = InputNames(kernel);
        var missing = expected.Where(n => !inputNames.Contains(n)).ToList();
        if (missing.Count > 0)
            return $"kernel '{kernel}' needs input(s) {string.Join(", ", missing.Select(n => $"'{n}'"))}";
        var extra = inputNames.Where(n => !expected.Contains(n)).ToList();
        if (extra.Count > 0)
            return $"kernel '{kernel}' has no input(s) {string.Join(", ", extra.Select(n => $"'{n}'"))}; it takes {string.Join(", ", expected)}";
        if (parameters.Count > 0)
            return $"kernel '{kernel}' takes no parameters, got {string.Join(", ", parameters.Keys.Select(k => $"'{k}'"))}";
        return null;
    }

    private static KernelPlan PlanVectorAdd(TensorInfo a, TensorInfo b, out string? error)
    {
        if (a.DType != NpyDType.Float32 || b.DType != NpyDType.Float32)
            return Fail($"vector-add needs float32 inputs, got a {a.Describe()} and b {b.Describe()}", out error);
        if (a.Shape.Length != 1 || b.Shape.Length != 1)
            return Fail($"vector-add needs 1-D inputs, got a {a.Describe()} and b {b.Describe()}", out error);
        if (a.Shape[0] != b.Shape[0])
            return Fail($"vector-add needs inputs of the same length, got a {a.Describe()} and b {b.Describe()}", out error);
        error = null;
        return new KernelPlan(new Dictionary<string, TensorInfo> { ["c"] = new(NpyDType.Float32, [a.Shape[0]]) }, a.Shape[0] / 1e9);
    }

    private static KernelPlan PlanMatmul(TensorInfo a, TensorInfo b, out string? error)
    {
        if (a.DType != NpyDType.Float32 || b.DType != NpyDType.Float32)
            return Fail($"matmul needs float32 inputs, got a {a.Describe()} and b {b.Describe()}", out error);
        if (a.Shape.Length != 2 || b.Shape.Length != 2)
            return Fail($"matmul needs 2-D inputs, got a {a.Describe()} and b {b.Describe()}", out error);
        if (a.Shape[1] != b.Shape[0])
            return Fail($"matmul shape mismatch: a is [{a.Shape[0]},{a.Shape[1]}] and b is [{b.Shape[0]},{b.Shape[1]}]; a's columns must equal b's rows", out error);
        long m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        if (m * n > int.MaxValue / 4)
            return Fail($"matmul output [{m},{n}] is too large", out error);
        error = null;
        return new KernelPlan(new Dictionary<string, TensorInfo> { ["c"] = new(NpyDType.Float32, [(int)m, (int)n]) }, 2.0 * m * k * n / 1e9);
    }

    private static readonly KernelPlan Empty = new(new Dictionary<string, TensorInfo>(), 0);

    private static KernelPlan Fail(string message, out string? error)
    {
        error = message;
        return Empty;
    }
}
