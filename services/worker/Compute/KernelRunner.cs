using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Compute;

/// <summary>An input that passed the shape checks but whose values the kernel cannot use (labels other than 0/1...).</summary>
public sealed class KernelInputException(string message) : Exception(message);

/// <summary>
/// Every catalogue kernel, built once from a backend's primitives so that both backends compute the same
/// algorithm and differ only in arithmetic order. Inputs have been validated by <see cref="KernelCatalog.Plan"/>.
/// </summary>
public static class KernelRunner
{
    // Blocks keep the scratch score matrix of knn small (256 x 8192 floats = 8 MiB) and give progress steps.
    private const int KnnQueryBlock = 256;
    private const int KnnCorpusBlock = 8192;

    /// <summary>
    /// Runs a kernel. Every backend follows the arithmetic of docs/KERNELS.md and this host code depends on neither
    /// the thread count nor the vector width, so honest workers produce the same bytes and agree by output CID.
    /// </summary>
    public static IReadOnlyDictionary<string, NpyArray> Run(string kernel, KernelArguments args, IReadOnlyDictionary<string, NpyArray> inputs, IComputeBackend backend, ComputeProgress progress)
    {
        var outputs = Compute(kernel, args, inputs, backend, progress);
        foreach (var output in outputs.Values)
        {
            if (output.Float32 is { } values)
                CanonicalizeNaN(values);
        }
        return outputs;
    }

    /// <summary>The one NaN every output carries: positive, quiet, no payload.</summary>
    public const int CanonicalNaNBits = 0x7FC00000;

    /// <summary>
    /// IEEE 754 leaves the sign and payload of a NaN result to the hardware (x86 keeps an operand's payload, GPUs
    /// return a fixed NaN), so equal arithmetic can still give different bytes; every NaN becomes the canonical one.
    /// </summary>
    public static void CanonicalizeNaN(Span<float> values)
    {
        var canonical = BitConverter.Int32BitsToSingle(CanonicalNaNBits);
        for (var i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(values[i]))
                values[i] = canonical;
        }
    }

    private static IReadOnlyDictionary<string, NpyArray> Compute(string kernel, KernelArguments args, IReadOnlyDictionary<string, NpyArray> inputs, IComputeBackend backend, ComputeProgress progress) => kernel switch
    {
        KernelCatalog.VectorAdd => VectorAdd(inputs["a"], inputs["b"], backend),
        KernelCatalog.Matmul => Matmul(inputs["a"], inputs["b"], backend, progress),
        KernelCatalog.KMeans => KMeans(inputs["points"], args.Int("k"), args.Int("iterations"), args.Long("seed"), backend, progress),
        KernelCatalog.Knn => Knn(inputs["corpus"], inputs["queries"], args.Int("k"), args.Text("metric"), backend, progress),
        KernelCatalog.TrainLogReg => TrainLogReg(inputs["x"], inputs["y"], args.Int("epochs"), args.Double("learningRate"), args.Double("l2"), backend, progress),
        KernelCatalog.MlpInfer => MlpInfer(inputs, ParseActivation(args.Text("activation")), backend, progress),
        _ => throw new ArgumentException($"unknown kernel '{kernel}'", nameof(kernel)),
    };

    public static Activation ParseActivation(string name) => name switch
    {
        "relu" => Activation.Relu,
        "tanh" => Activation.Tanh,
        "sigmoid" => Activation.Sigmoid,
        "identity" => Activation.Identity,
        _ => throw new ArgumentException($"unknown activation '{name}'", nameof(name)),
    };

    private static Dictionary<string, NpyArray> VectorAdd(NpyArray a, NpyArray b, IComputeBackend backend)
    {
        var c = new float[a.Shape[0]];
        backend.Add(a.Float32, b.Float32, c);
        return new() { ["c"] = NpyArray.FromFloat32(c, c.Length) };
    }

    private static Dictionary<string, NpyArray> Matmul(NpyArray a, NpyArray b, IComputeBackend backend, ComputeProgress progress)
    {
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        var c = new float[m * n];
        backend.Gemm(a.Float32, b.Float32, c, m, k, n, transposeB: false, progress);
        return new() { ["c"] = NpyArray.FromFloat32(c, m, n) };
    }

    /// <summary>
    /// Lloyd's algorithm from the k-means++ seeding of <see cref="KMeansSeeding"/> (on the host, in a fixed order,
    /// so the same on every backend): each iteration assigns every point to its nearest centroid and moves each
    /// centroid to the mean of its points (an empty cluster keeps its centroid). A last assignment makes the labels
    /// those of the returned centroids.
    /// </summary>
    private static Dictionary<string, NpyArray> KMeans(NpyArray pointsArray, int k, int iterations, long seed, IComputeBackend backend, ComputeProgress progress)
    {
        int n = pointsArray.Shape[0], d = pointsArray.Shape[1];
        var points = pointsArray.Float32!;
        var centroids = new float[k * d];
        progress.Report(0);
        var start = KMeansSeeding.ChooseIndices(points, n, d, k, seed, progress.CancellationToken);
        for (var c = 0; c < k; c++)
            Array.Copy(points, (long)start[c] * d, centroids, (long)c * d, d);

        var labels = new int[n];
        var sums = new double[k * d];
        var counts = new long[k];
        for (var iteration = 0; iteration < iterations; iteration++)
        {
            progress.Report((double)iteration / iterations);
            backend.NearestCentroid(points, n, d, centroids, k, labels);
            // The update is O(n·d) against the assignment's O(n·k·d); summing in double keeps it exact enough
            // that both backends agree whenever their labels do.
            Array.Clear(sums);
            Array.Clear(counts);
            for (var i = 0; i < n; i++)
            {
                var label = labels[i];
                counts[label]++;
                var row = points.AsSpan(i * d, d);
                var sum = sums.AsSpan(label * d, d);
                for (var j = 0; j < d; j++)
                    sum[j] += row[j];
            }
            for (var c = 0; c < k; c++)
            {
                if (counts[c] == 0)
                    continue;
                for (var j = 0; j < d; j++)
                    centroids[(c * d) + j] = (float)(sums[(c * d) + j] / counts[c]);
            }
        }
        backend.NearestCentroid(points, n, d, centroids, k, labels);
        progress.Report(1);
        return new() { ["centroids"] = NpyArray.FromFloat32(centroids, k, d), ["labels"] = NpyArray.FromInt32(labels, n) };
    }

    /// <summary>
    /// Exact (brute-force) nearest neighbours. Cosine scores are dot products of unit rows, highest first; l2
    /// scores are Euclidean distances, smallest first; ties go to the lower corpus index. Scores come from a
    /// blocked a·bᵀ product on the backend; the top-k merge runs on the host.
    /// </summary>
    private static Dictionary<string, NpyArray> Knn(NpyArray corpusArray, NpyArray queriesArray, int k, string metric, IComputeBackend backend, ComputeProgress progress)
    {
        int n = corpusArray.Shape[0], q = queriesArray.Shape[0], d = corpusArray.Shape[1];
        var cosine = metric == "cosine";
        float[] corpus = corpusArray.Float32!, queries = queriesArray.Float32!;
        float[] corpusNorms = RowSquaredNorms(corpus, n, d), queryNorms = RowSquaredNorms(queries, q, d);
        if (cosine)
        {
            corpus = Normalized(corpus, corpusNorms, n, d);
            queries = Normalized(queries, queryNorms, q, d);
        }

        var indices = new int[q * k];
        var scores = new float[q * k];
        var scratch = new float[Math.Min(q, KnnQueryBlock) * Math.Min(n, KnnCorpusBlock)];
        var blocks = (long)((q + KnnQueryBlock - 1) / KnnQueryBlock) * ((n + KnnCorpusBlock - 1) / KnnCorpusBlock);
        long done = 0;
        for (var q0 = 0; q0 < q; q0 += KnnQueryBlock)
        {
            var qn = Math.Min(KnnQueryBlock, q - q0);
            var best = new TopK[qn];
            for (var i = 0; i < qn; i++)
                best[i] = new TopK(k, largestFirst: cosine);
            for (var c0 = 0; c0 < n; c0 += KnnCorpusBlock)
            {
                progress.Report((double)done++ / blocks);
                var cn = Math.Min(KnnCorpusBlock, n - c0);
                backend.Gemm(queries.AsMemory(q0 * d, qn * d), corpus.AsMemory(c0 * d, cn * d), scratch.AsMemory(0, qn * cn), qn, d, cn, transposeB: true, ComputeProgress.None);
                Parallel.For(0, qn, new ParallelOptions { CancellationToken = progress.CancellationToken }, i =>
                {
                    var row = scratch.AsSpan(i * cn, cn);
                    var top = best[i];
                    for (var j = 0; j < cn; j++)
                    {
                        var score = row[j];
                        if (!cosine)
                            // |q - c|² = |q|² - 2 q·c + |c|², clamped: rounding can make it slightly negative.
                            score = MathF.Sqrt(MathF.Max(0, queryNorms[q0 + i] - (2 * score) + corpusNorms[c0 + j]));
                        top.Offer(score, c0 + j);
                    }
                });
            }
            for (var i = 0; i < qn; i++)
                best[i].CopySortedTo(indices.AsSpan((q0 + i) * k, k), scores.AsSpan((q0 + i) * k, k));
        }
        progress.Report(1);
        return new() { ["indices"] = NpyArray.FromInt32(indices, q, k), ["scores"] = NpyArray.FromFloat32(scores, q, k) };
    }

    // DOT16 (docs/KERNELS.md), not TensorPrimitives.Dot, whose order depends on the machine's vector width.
    private static float[] RowSquaredNorms(float[] rows, int count, int d)
    {
        var norms = new float[count];
        Parallel.For(0, count, i => norms[i] = Simd.ReproVector.Dot16(rows.AsSpan(i * d, d), rows.AsSpan(i * d, d)));
        return norms;
    }

    // A zero row stays zero, so its cosine score with anything is 0 rather than NaN. Each element is one correctly
    // rounded division, the same on any machine.
    private static float[] Normalized(float[] rows, float[] squaredNorms, int count, int d)
    {
        var unit = new float[rows.Length];
        Parallel.For(0, count, i =>
        {
            var norm = MathF.Sqrt(squaredNorms[i]);
            if (norm > 0)
                System.Numerics.Tensors.TensorPrimitives.Divide(rows.AsSpan(i * d, d), norm, unit.AsSpan(i * d, d));
        });
        return unit;
    }

    /// <summary>
    /// Full-batch gradient descent on the mean logistic loss plus l2/2·|w|² (the bias is not penalised),
    /// from zero weights. loss[e] is the objective before step e. weights holds w then the bias.
    /// </summary>
    private static Dictionary<string, NpyArray> TrainLogReg(NpyArray xArray, NpyArray yArray, int epochs, double learningRate, double l2, IComputeBackend backend, ComputeProgress progress)
    {
        int n = xArray.Shape[0], d = xArray.Shape[1];
        var x = xArray.Float32!;
        var y = Labels(yArray);
        var w = new float[d];
        double bias = 0;
        var z = new float[n];
        var residual = new float[n];
        var gradient = new float[d];
        var loss = new float[epochs];
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            progress.Report((double)epoch / epochs);
            backend.MatVec(x, w, z, n, d, transpose: false);
            double total = 0;
            for (var i = 0; i < n; i++)
            {
                var zi = z[i] + bias;
                // log(1 + e^z) - y·z, written so that it neither overflows nor loses precision for large |z|.
                total += Math.Max(zi, 0) + Math.Log(1 + Math.Exp(-Math.Abs(zi))) - (y[i] * zi);
                residual[i] = (float)((Sigmoid(zi) - y[i]) / n);
            }
            double penalty = 0;
            for (var j = 0; j < d; j++)
                penalty += (double)w[j] * w[j];
            loss[epoch] = (float)((total / n) + (l2 / 2 * penalty));

            backend.MatVec(x, residual, gradient, n, d, transpose: true);
            double biasGradient = 0;
            for (var i = 0; i < n; i++)
                biasGradient += residual[i];
            for (var j = 0; j < d; j++)
                w[j] -= (float)(learningRate * (gradient[j] + (l2 * w[j])));
            bias -= learningRate * biasGradient;
        }
        progress.Report(1);
        var weights = new float[d + 1];
        w.CopyTo(weights, 0);
        weights[d] = (float)bias;
        return new() { ["weights"] = NpyArray.FromFloat32(weights, d + 1), ["loss"] = NpyArray.FromFloat32(loss, epochs) };
    }

    private static double Sigmoid(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    private static float[] Labels(NpyArray y)
    {
        var labels = y.DType == NpyDType.Float32 ? y.Float32! : Array.ConvertAll(y.Int32!, v => (float)v);
        for (var i = 0; i < labels.Length; i++)
        {
            // The rule the scheduler also applies when it checks a worker's input_invalid claim itself.
            if (KernelCatalog.CheckValue(KernelCatalog.TrainLogReg, i, labels[i]) is { } error)
                throw new KernelInputException(error);
        }
        return labels;
    }

    private static Dictionary<string, NpyArray> MlpInfer(IReadOnlyDictionary<string, NpyArray> inputs, Activation activation, IComputeBackend backend, ComputeProgress progress)
    {
        NpyArray x = inputs["x"], w1 = inputs["w1"], w2 = inputs["w2"];
        int n = x.Shape[0], d = x.Shape[1], h = w1.Shape[1], o = w2.Shape[1];
        // Each product reports its share of the whole job's progress.
        var firstShare = (double)d / (d + o);
        var hidden = new float[n * h];
        backend.Gemm(x.Float32, w1.Float32, hidden, n, d, h, transposeB: false, new ComputeProgress(progress.CancellationToken, f => progress.Report(f * firstShare)));
        backend.BiasActivation(hidden, n, h, inputs["b1"].Float32, activation);
        var y = new float[n * o];
        backend.Gemm(hidden, w2.Float32, y, n, h, o, transposeB: false, new ComputeProgress(progress.CancellationToken, f => progress.Report(firstShare + (f * (1 - firstShare)))));
        backend.BiasActivation(y, n, o, inputs["b2"].Float32, Activation.Identity);
        progress.Report(1);
        return new() { ["y"] = NpyArray.FromFloat32(y, n, o) };
    }

    /// <summary>The k best (score, index) pairs seen so far, as a heap whose root is the worst kept.</summary>
    private sealed class TopK(int k, bool largestFirst)
    {
        private readonly float[] _scores = new float[k];
        private readonly int[] _indices = new int[k];
        private int _count;

        // a is better than b: a higher (cosine) or lower (l2) score, ties to the lower index.
        private bool Better(float scoreA, int indexA, float scoreB, int indexB) =>
            scoreA != scoreB ? (largestFirst ? scoreA > scoreB : scoreA < scoreB) : indexA < indexB;

        public void Offer(float score, int index)
        {
            if (float.IsNaN(score))
                return;
            if (_count < k)
            {
                _scores[_count] = score;
                _indices[_count] = index;
                SiftUp(_count++);
            }
            else if (Better(score, index, _scores[0], _indices[0]))
            {
                _scores[0] = score;
                _indices[0] = index;
                SiftDown(0);
            }
        }

        public void CopySortedTo(Span<int> indices, Span<float> scores)
        {
            var order = Enumerable.Range(0, _count).ToArray();
            Array.Sort(order, (a, b) => Better(_scores[a], _indices[a], _scores[b], _indices[b]) ? -1 : Better(_scores[b], _indices[b], _scores[a], _indices[a]) ? 1 : 0);
            indices.Fill(-1);
            scores.Fill(float.NaN);
            for (var i = 0; i < order.Length; i++)
            {
                indices[i] = _indices[order[i]];
                scores[i] = _scores[order[i]];
            }
        }

        // Heap order: a parent is worse than its children, so the root is the one to evict.
        private void SiftUp(int i)
        {
            while (i > 0)
            {
                var parent = (i - 1) / 2;
                if (!Better(_scores[parent], _indices[parent], _scores[i], _indices[i]))
                    return;
                Swap(i, parent);
                i = parent;
            }
        }

        private void SiftDown(int i)
        {
            while (true)
            {
                int left = (2 * i) + 1, right = left + 1, worst = i;
                if (left < _count && Better(_scores[worst], _indices[worst], _scores[left], _indices[left]))
                    worst = left;
                if (right < _count && Better(_scores[worst], _indices[worst], _scores[right], _indices[right]))
                    worst = right;
                if (worst == i)
                    return;
                Swap(i, worst);
                i = worst;
            }
        }

        private void Swap(int a, int b)
        {
            (_scores[a], _scores[b]) = (_scores[b], _scores[a]);
            (_indices[a], _indices[b]) = (_indices[b], _indices[a]);
        }
    }
}
