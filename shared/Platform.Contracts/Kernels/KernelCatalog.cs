using System.Globalization;
using Platform.Contracts.Tensors;

namespace Platform.Contracts.Kernels;

/// <summary>Shape and type of one tensor, as read from its .npy header.</summary>
public sealed record TensorInfo(NpyDType DType, int[] Shape)
{
    public string Describe() => $"{(DType == NpyDType.Float32 ? "float32" : "int32")}[{string.Join(",", Shape)}]";

    public long Elements => Shape.Aggregate(1L, (total, dim) => total * dim);

    /// <summary>Bytes of the data (both dtypes are 4 bytes per element).</summary>
    public long Bytes => Elements * 4;
}

/// <summary>What a valid job will produce and how much work it is.</summary>
public sealed record KernelPlan(IReadOnlyDictionary<string, TensorInfo> Outputs, double Gflop, KernelArguments Arguments)
{
    /// <summary>Bytes of the outputs, which a worker must hold beside the inputs.</summary>
    public long OutputBytes => Outputs.Values.Sum(o => o.Bytes);
}

/// <summary>One parameter a kernel takes: a whole number, a real number or one of a few words.</summary>
public sealed record KernelParameter(string Name, string Description, string Default, double Min = 0, double Max = 0, bool Integer = false, IReadOnlyList<string>? Choices = null)
{
    public string Describe() => Choices is not null
        ? $"one of {string.Join(", ", Choices)}"
        : $"{(Integer ? "a whole number" : "a number")} from {Min.ToString(CultureInfo.InvariantCulture)} to {Max.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>One kernel of the catalogue: its inputs in order, its parameters and its outputs.</summary>
/// <param name="Version">
/// Which definition of the kernel's results this is, as receipts name it: raise it whenever a change could alter
/// an output's bytes for the same inputs (a different algorithm, seeding or reduction order).
/// </param>
/// <param name="Shapes">The shape rule, for people: each input's and output's shape, float32 unless it says int32.</param>
public sealed record KernelDefinition(string Name, string Description, IReadOnlyList<string> Inputs, IReadOnlyList<KernelParameter> Parameters, IReadOnlyList<string> Outputs,
    string Version = "1", string Shapes = "");

/// <summary>A kernel's parameters after validation, with defaults filled in.</summary>
public sealed class KernelArguments(IReadOnlyDictionary<string, string> values)
{
    public static KernelArguments None { get; } = new(new Dictionary<string, string>());

    public IReadOnlyDictionary<string, string> Values => values;

    public int Int(string name) => int.Parse(values[name], NumberStyles.Integer, CultureInfo.InvariantCulture);

    public long Long(string name) => long.Parse(values[name], NumberStyles.Integer, CultureInfo.InvariantCulture);

    public double Double(string name) => double.Parse(values[name], NumberStyles.Float, CultureInfo.InvariantCulture);

    public string Text(string name) => values[name];
}

/// <summary>
/// The kernels workers may run (no user code ever runs on an operator's machine). The gateway checks a job
/// against this before accepting it, and the worker checks again before allocating anything, so both
/// give the same reasons.
/// </summary>
public static class KernelCatalog
{
    public const string VectorAdd = "vector-add";
    public const string Matmul = "matmul";
    public const string KMeans = "kmeans";
    public const string Knn = "knn";
    public const string TrainLogReg = "train-logreg";
    public const string MlpInfer = "mlp-infer";

    /// <summary>The largest tensor a kernel produces, in elements: outputs are held in one .NET array.</summary>
    public const long MaxOutputElements = int.MaxValue / 2;

    public static IReadOnlyList<KernelDefinition> Definitions { get; } =
    [
        new(VectorAdd, "c = a + b", ["a", "b"], [], ["c"], Shapes: "a [n], b [n] -> c [n]"),
        new(Matmul, "c = a · b", ["a", "b"], [], ["c"], Shapes: "a [m,k], b [k,n] -> c [m,n]"),
        new(KMeans, "Lloyd's k-means from a k-means++ seeding", ["points"],
        [
            new("k", "number of clusters", "8", 1, 4096, Integer: true),
            new("iterations", "Lloyd iterations", "20", 1, 1000, Integer: true),
            new("seed", "seed of the k-means++ choice of starting centroids", "0", 0, int.MaxValue, Integer: true),
        ], ["centroids", "labels"], Version: "2", Shapes: "points [n,d], n >= k -> centroids [k,d], labels [n] int32"),
        new(Knn, "the k nearest corpus rows of each query", ["corpus", "queries"],
        [
            new("k", "neighbours per query", "10", 1, 1024, Integer: true),
            new("metric", "cosine (highest similarity first) or l2 (smallest distance first)", "cosine", Choices: ["cosine", "l2"]),
        ], ["indices", "scores"], Shapes: "corpus [n,d], queries [q,d], n >= k -> indices [q,k] int32, scores [q,k]"),
        new(TrainLogReg, "logistic regression by full-batch gradient descent", ["x", "y"],
        [
            new("epochs", "gradient steps", "100", 1, 100_000, Integer: true),
            new("learningRate", "step size", "0.1", 1e-9, 1000),
            new("l2", "L2 penalty on the weights (not the bias)", "0", 0, 1000),
        ], ["weights", "loss"], Shapes: "x [n,d], y [n] of 0 and 1 -> weights [d+1] (the bias last), loss [epochs]"),
        new(MlpInfer, "y = activation(x · w1 + b1) · w2 + b2", ["x", "w1", "b1", "w2", "b2"],
        [
            new("activation", "hidden layer activation", "relu", Choices: ["relu", "tanh", "sigmoid", "identity"]),
        ], ["y"], Shapes: "x [n,d], w1 [d,h], b1 [h], w2 [h,o], b2 [o] -> y [n,o]"),
    ];

    public static IReadOnlyList<string> Names { get; } = [.. Definitions.Select(d => d.Name)];

    public static bool IsKnown(string? kernel) => kernel is not null && Names.Contains(kernel);

    public static KernelDefinition Definition(string kernel) =>
        Definitions.FirstOrDefault(d => d.Name == kernel) ?? throw new ArgumentException($"unknown kernel '{kernel}'", nameof(kernel));

    /// <summary>The version of the kernel's results (see <see cref="KernelDefinition.Version"/>).</summary>
    public static string VersionOf(string kernel) => Definition(kernel).Version;

    /// <summary>The input names a kernel takes, in order.</summary>
    public static IReadOnlyList<string> InputNames(string kernel) => Definition(kernel).Inputs;

    /// <summary>
    /// The input whose element values the kernel constrains beyond its shape and dtype (train-logreg's labels), or
    /// null: the one thing about a job's inputs that only reading their data shows.
    /// </summary>
    public static string? ValueCheckedInput(string kernel) => kernel == TrainLogReg ? "y" : null;

    /// <summary>Why element <paramref name="index"/> of the kernel's value-checked input is not a value it takes, or null.</summary>
    public static string? CheckValue(string kernel, long index, float value) =>
        kernel == TrainLogReg && value is not (0f or 1f)
            ? string.Create(CultureInfo.InvariantCulture, $"train-logreg labels y must be 0 or 1; y[{index}] is {value}")
            : null;

    /// <summary>
    /// Validates a job's inputs and parameters; returns the plan, or the reason it cannot run as a sentence
    /// a client can act on.
    /// </summary>
    public static KernelPlan Plan(string kernel, IReadOnlyDictionary<string, TensorInfo> inputs, IReadOnlyDictionary<string, string> parameters, out string? error)
    {
        error = CheckNames(kernel, inputs.Keys.ToList(), parameters);
        if (error is not null)
            return Empty;
        var args = ReadArguments(Definition(kernel), parameters, out error);
        if (error is not null)
            return Empty;
        // A zero-size dimension makes no work, and could make an output of any size at the price of no work (matmul's
        // [m,0] x [0,n] is an m-by-n matrix of zeros): no kernel takes one.
        foreach (var name in Definition(kernel).Inputs)
        {
            if (Array.IndexOf(inputs[name].Shape, 0) is var axis and >= 0)
                return Fail($"{kernel} input '{name}' {inputs[name].Describe()} has a zero-size dimension (axis {axis}); every dimension of every input must be at least 1", out error);
        }
        var plan = kernel switch
        {
            VectorAdd => PlanVectorAdd(inputs["a"], inputs["b"], out error),
            Matmul => PlanMatmul(inputs["a"], inputs["b"], out error),
            KMeans => PlanKMeans(inputs["points"], args, out error),
            Knn => PlanKnn(inputs["corpus"], inputs["queries"], args, out error),
            TrainLogReg => PlanTrainLogReg(inputs["x"], inputs["y"], args, out error),
            MlpInfer => PlanMlpInfer(inputs, args, out error),
            _ => Fail($"unknown kernel '{kernel}'", out error),
        };
        if (error is not null)
            return Empty;
        if (plan.Outputs.FirstOrDefault(o => o.Value.Elements > MaxOutputElements) is { Key: not null } huge)
            return Fail($"{kernel} output '{huge.Key}' {huge.Value.Describe()} is too large (at most {MaxOutputElements:N0} elements)", out error);
        return plan with { Arguments = args };
    }

    /// <summary>
    /// Checks what can be known without the blobs: the kernel, the input names and the parameters' names and
    /// values.
    /// </summary>
    public static string? CheckNames(string kernel, IReadOnlyCollection<string> inputNames, IReadOnlyDictionary<string, string> parameters)
    {
        if (!IsKnown(kernel))
            return $"unknown kernel '{Clip(kernel)}'; available kernels: {string.Join(", ", Names)}";
        var definition = Definition(kernel);
        var expected = definition.Inputs;
        var missing = expected.Where(n => !inputNames.Contains(n)).ToList();
        if (missing.Count > 0)
            return $"kernel '{kernel}' needs input(s) {string.Join(", ", missing.Select(n => $"'{n}'"))}";
        var extra = inputNames.Where(n => !expected.Contains(n)).ToList();
        if (extra.Count > 0)
            return $"kernel '{kernel}' has no input(s) {string.Join(", ", extra.Select(n => $"'{n}'"))}; it takes {string.Join(", ", expected)}";
        ReadArguments(definition, parameters, out var error);
        return error;
    }

    private static KernelArguments ReadArguments(KernelDefinition definition, IReadOnlyDictionary<string, string> parameters, out string? error)
    {
        error = null;
        if (definition.Parameters.Count == 0 && parameters.Count > 0)
        {
            error = $"kernel '{definition.Name}' takes no parameters, got {string.Join(", ", parameters.Keys.Select(k => $"'{k}'"))}";
            return KernelArguments.None;
        }
        var unknown = parameters.Keys.Where(k => definition.Parameters.All(p => p.Name != k)).ToList();
        if (unknown.Count > 0)
        {
            error = $"kernel '{definition.Name}' has no parameter(s) {string.Join(", ", unknown.Select(k => $"'{k}'"))}; it takes {string.Join(", ", definition.Parameters.Select(p => p.Name))}";
            return KernelArguments.None;
        }
        var values = new Dictionary<string, string>();
        foreach (var parameter in definition.Parameters)
        {
            var text = parameters.TryGetValue(parameter.Name, out var given) ? given.Trim() : parameter.Default;
            var problem = $"parameter '{parameter.Name}' of {definition.Name} ({parameter.Description}) must be {parameter.Describe()}, got '{Clip(text)}'";
            if (parameter.Choices is not null)
            {
                if (!parameter.Choices.Contains(text))
                {
                    error = problem;
                    return KernelArguments.None;
                }
                values[parameter.Name] = text;
                continue;
            }
            // .NET's number parsing ignores trailing NULs ("2\0" reads as 2); such text is no number, and a NUL
            // cannot be stored in the job's jsonb spec either.
            if (text.Any(char.IsControl) || !double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || !double.IsFinite(number)
                || number < parameter.Min || number > parameter.Max || (parameter.Integer && number != Math.Floor(number)))
            {
                error = problem;
                return KernelArguments.None;
            }
            values[parameter.Name] = parameter.Integer ? ((long)number).ToString(CultureInfo.InvariantCulture) : number.ToString("R", CultureInfo.InvariantCulture);
        }
        return new KernelArguments(values);
    }

    private static KernelPlan PlanVectorAdd(TensorInfo a, TensorInfo b, out string? error)
    {
        if (NotFloat32(VectorAdd, out error, ("a", a), ("b", b)) || NotRank(VectorAdd, 1, out error, ("a", a), ("b", b)))
            return Empty;
        if (a.Shape[0] != b.Shape[0])
            return Fail($"vector-add needs inputs of the same length, got a {a.Describe()} and b {b.Describe()}", out error);
        return Planned(a.Shape[0] / 1e9, ("c", F32(a.Shape[0])));
    }

    private static KernelPlan PlanMatmul(TensorInfo a, TensorInfo b, out string? error)
    {
        if (NotFloat32(Matmul, out error, ("a", a), ("b", b)) || NotRank(Matmul, 2, out error, ("a", a), ("b", b)))
            return Empty;
        if (a.Shape[1] != b.Shape[0])
            return Fail($"matmul shape mismatch: a is [{a.Shape[0]},{a.Shape[1]}] and b is [{b.Shape[0]},{b.Shape[1]}]; a's columns must equal b's rows", out error);
        long m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        if (m * n > MaxOutputElements)
            return Fail($"matmul output [{m},{n}] is too large (at most {MaxOutputElements:N0} elements)", out error);
        return Planned(2.0 * m * k * n / 1e9, ("c", F32((int)m, (int)n)));
    }

    private static KernelPlan PlanKMeans(TensorInfo points, KernelArguments args, out string? error)
    {
        if (NotFloat32(KMeans, out error, ("points", points)) || NotRank(KMeans, 2, out error, ("points", points)))
            return Empty;
        int n = points.Shape[0], d = points.Shape[1], k = args.Int("k");
        if (n < k)
            return Fail($"kmeans needs at least k={k} points, got {points.Describe()}", out error);
        // Per iteration: k distances of d subtract-multiply-adds per point, then one add per coordinate. The k-means++
        // seeding computes every point's distance to the first centre and to each local trial of the others.
        var seeding = (1.0 + ((k - 1.0) * KMeansSeeding.LocalTrials(k))) * 3.0 * n * d;
        var gflop = ((args.Int("iterations") * ((3.0 * n * k * d) + ((double)n * d))) + seeding) / 1e9;
        return Planned(gflop, ("centroids", F32(k, d)), ("labels", new TensorInfo(NpyDType.Int32, [n])));
    }

    private static KernelPlan PlanKnn(TensorInfo corpus, TensorInfo queries, KernelArguments args, out string? error)
    {
        if (NotFloat32(Knn, out error, ("corpus", corpus), ("queries", queries)) || NotRank(Knn, 2, out error, ("corpus", corpus), ("queries", queries)))
            return Empty;
        int n = corpus.Shape[0], q = queries.Shape[0], k = args.Int("k");
        if (corpus.Shape[1] != queries.Shape[1])
            return Fail($"knn needs corpus and queries of the same width, got corpus {corpus.Describe()} and queries {queries.Describe()}", out error);
        if (n < k)
            return Fail($"knn needs at least k={k} corpus rows, got corpus {corpus.Describe()}", out error);
        var gflop = ((2.0 * q * n * corpus.Shape[1]) + (3.0 * (n + q) * corpus.Shape[1])) / 1e9;
        return Planned(gflop, ("indices", new TensorInfo(NpyDType.Int32, [q, k])), ("scores", F32(q, k)));
    }

    private static KernelPlan PlanTrainLogReg(TensorInfo x, TensorInfo y, KernelArguments args, out string? error)
    {
        if (NotFloat32(TrainLogReg, out error, ("x", x)) || NotRank(TrainLogReg, 2, out error, ("x", x)) || NotRank(TrainLogReg, 1, out error, ("y", y)))
            return Empty;
        if (x.Shape[0] != y.Shape[0])
            return Fail($"train-logreg needs one label per row of x, got x {x.Describe()} and y {y.Describe()}", out error);
        int n = x.Shape[0], d = x.Shape[1], epochs = args.Int("epochs");
        // Per epoch: a forward and a backward matrix-vector product, and the loss.
        var gflop = epochs * ((4.0 * n * d) + (10.0 * n)) / 1e9;
        return Planned(gflop, ("weights", F32(d + 1)), ("loss", F32(epochs)));
    }

    private static KernelPlan PlanMlpInfer(IReadOnlyDictionary<string, TensorInfo> inputs, KernelArguments args, out string? error)
    {
        _ = args;
        TensorInfo x = inputs["x"], w1 = inputs["w1"], b1 = inputs["b1"], w2 = inputs["w2"], b2 = inputs["b2"];
        var all = new[] { ("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2) };
        if (NotFloat32(MlpInfer, out error, all) || NotRank(MlpInfer, 2, out error, ("x", x), ("w1", w1), ("w2", w2)) || NotRank(MlpInfer, 1, out error, ("b1", b1), ("b2", b2)))
            return Empty;
        int n = x.Shape[0], d = x.Shape[1], h = w1.Shape[1], o = w2.Shape[1];
        if (w1.Shape[0] != d || b1.Shape[0] != h || w2.Shape[0] != h || b2.Shape[0] != o)
            return Fail($"mlp-infer shapes do not chain: need x [n,d], w1 [d,h], b1 [h], w2 [h,o], b2 [o], got x {x.Describe()}, w1 {w1.Describe()}, b1 {b1.Describe()}, w2 {w2.Describe()}, b2 {b2.Describe()}", out error);
        if ((long)n * h > MaxOutputElements)
            return Fail($"mlp-infer hidden layer [{n},{h}] is too large (at most {MaxOutputElements:N0} elements)", out error);
        var gflop = ((2.0 * n * d * h) + (2.0 * n * h * o) + (2.0 * n * (h + o))) / 1e9;
        return Planned(gflop, ("y", F32(n, o)));
    }

    private static bool NotFloat32(string kernel, out string? error, params (string Name, TensorInfo Info)[] tensors)
    {
        var wrong = tensors.Where(t => t.Info.DType != NpyDType.Float32).ToList();
        error = wrong.Count == 0 ? null : $"{kernel} needs float32 inputs, got {string.Join(" and ", wrong.Select(t => $"{t.Name} {t.Info.Describe()}"))}";
        return error is not null;
    }

    private static bool NotRank(string kernel, int rank, out string? error, params (string Name, TensorInfo Info)[] tensors)
    {
        var wrong = tensors.Where(t => t.Info.Shape.Length != rank).ToList();
        error = wrong.Count == 0 ? null : $"{kernel} needs {rank}-D {string.Join(", ", tensors.Select(t => t.Name))}, got {string.Join(" and ", wrong.Select(t => $"{t.Name} {t.Info.Describe()}"))}";
        return error is not null;
    }

    /// <summary>A value as quoted in a problem message: cut short, since a hostile request may put a megabyte into one.</summary>
    public static string Clip(string? s) => s is null ? "(null)" : s.Length <= 80 ? s : s[..80] + "...";

    private static TensorInfo F32(params int[] shape) => new(NpyDType.Float32, shape);

    private static KernelPlan Planned(double gflop, params (string Name, TensorInfo Info)[] outputs) =>
        new(outputs.ToDictionary(o => o.Name, o => o.Info), gflop, KernelArguments.None);

    private static readonly KernelPlan Empty = new(new Dictionary<string, TensorInfo>(), 0, KernelArguments.None);

    private static KernelPlan Fail(string message, out string? error)
    {
        error = message;
        return Empty;
    }
}
