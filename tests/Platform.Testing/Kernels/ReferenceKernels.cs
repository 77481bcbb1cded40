using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Testing.Kernels;

/// <summary>
/// The catalogue's kernels as plain scalar loops in double precision, written straight from the kernel
/// definitions (docs/KERNELS.md) and sharing no code with the worker's backends but the kmeans seeding, which
/// is part of the definition. Backends are checked against these within each kernel's stated tolerance.
/// </summary>
public static class ReferenceKernels
{
    public static Dictionary<string, NpyArray> Run(string kernel, KernelArguments args, IReadOnlyDictionary<string, NpyArray> inputs) => kernel switch
    {
        KernelCatalog.VectorAdd => new() { ["c"] = NpyArray.FromFloat32(VectorAdd(inputs["a"].Float32!, inputs["b"].Float32!), inputs["a"].Shape[0]) },
        KernelCatalog.Matmul => new() { ["c"] = NpyArray.FromFloat32(Matmul(inputs["a"].Float32!, inputs["b"].Float32!, inputs["a"].Shape[0], inputs["a"].Shape[1], inputs["b"].Shape[1]), inputs["a"].Shape[0], inputs["b"].Shape[1]) },
        KernelCatalog.KMeans => KMeans(inputs["points"], args.Int("k"), args.Int("iterations"), args.Long("seed")),
        KernelCatalog.Knn => Knn(inputs["corpus"], inputs["queries"], args.Int("k"), args.Text("metric") == "cosine"),
        KernelCatalog.TrainLogReg => TrainLogReg(inputs["x"], inputs["y"], args.Int("epochs"), args.Double("learningRate"), args.Double("l2")),
        KernelCatalog.MlpInfer => MlpInfer(inputs, args.Text("activation")),
        _ => throw new ArgumentException($"unknown kernel '{kernel}'", nameof(kernel)),
    };

    public static float[] VectorAdd(float[] a, float[] b)
    {
        var c = new float[a.Length];
        for (var i = 0; i < a.Length; i++)
            c[i] = a[i] + b[i];
        return c;
    }

    public static float[] Matmul(float[] a, float[] b, int m, int k, int n)
    {
        var c = new float[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                    sum += (double)a[(i * k) + p] * b[(p * n) + j];
                c[(i * n) + j] = (float)sum;
            }
        }
        return c;
    }

    private static Dictionary<string, NpyArray> KMeans(NpyArray pointsArray, int k, int iterations, long seed)
    {
        int n = pointsArray.Shape[0], d = pointsArray.Shape[1];
        var points = pointsArray.Float32!;
        var centroids = new double[k * d];
        var start = KMeansSeeding.ChooseIndices(points, n, d, k, seed);
        for (var c = 0; c < k; c++)
        {
            for (var j = 0; j < d; j++)
                centroids[(c * d) + j] = points[(start[c] * d) + j];
        }
        var labels = new int[n];
        for (var iteration = 0; iteration < iterations; iteration++)
        {
            Assign(points, n, d, centroids, k, labels);
            var sums = new double[k * d];
            var counts = new int[k];
            for (var i = 0; i < n; i++)
            {
                counts[labels[i]]++;
                for (var j = 0; j < d; j++)
                    sums[(labels[i] * d) + j] += points[(i * d) + j];
            }
            for (var c = 0; c < k; c++)
            {
                if (counts[c] == 0)
                    continue;
                for (var j = 0; j < d; j++)
                    centroids[(c * d) + j] = (float)(sums[(c * d) + j] / counts[c]);
            }
        }
        Assign(points, n, d, centroids, k, labels);
        return new()
        {
            ["centroids"] = NpyArray.FromFloat32(Array.ConvertAll(centroids, v => (float)v), k, d),
            ["labels"] = NpyArray.FromInt32(labels, n),
        };
    }

    private static void Assign(float[] points, int n, int d, double[] centroids, int k, int[] labels)
    {
        for (var i = 0; i < n; i++)
        {
            var best = double.MaxValue;
            for (var c = 0; c < k; c++)
            {
                double distance = 0;
                for (var j = 0; j < d; j++)
                {
                    var diff = points[(i * d) + j] - centroids[(c * d) + j];
                    distance += diff * diff;
                }
                if (distance < best)
                {
                    best = distance;
                    labels[i] = c;
                }
            }
        }
    }

    private static Dictionary<string, NpyArray> Knn(NpyArray corpusArray, NpyArray queriesArray, int k, bool cosine)
    {
        int n = corpusArray.Shape[0], q = queriesArray.Shape[0], d = corpusArray.Shape[1];
        float[] corpus = corpusArray.Float32!, queries = queriesArray.Float32!;
        var indices = new int[q * k];
        var scores = new float[q * k];
        for (var i = 0; i < q; i++)
        {
            var all = new (double Score, int Index)[n];
            for (var c = 0; c < n; c++)
            {
                double dot = 0, qq = 0, cc = 0, l2 = 0;
                for (var j = 0; j < d; j++)
                {
                    double a = queries[(i * d) + j], b = corpus[(c * d) + j];
                    dot += a * b;
                    qq += a * a;
                    cc += b * b;
                    l2 += (a - b) * (a - b);
                }
                all[c] = (cosine ? (qq > 0 && cc > 0 ? dot / Math.Sqrt(qq * cc) : 0) : Math.Sqrt(l2), c);
            }
            var ordered = cosine ? all.OrderByDescending(s => s.Score).ThenBy(s => s.Index) : all.OrderBy(s => s.Score).ThenBy(s => s.Index);
            var top = ordered.Take(k).ToArray();
            for (var j = 0; j < k; j++)
            {
                indices[(i * k) + j] = top[j].Index;
                scores[(i * k) + j] = (float)top[j].Score;
            }
        }
        return new() { ["indices"] = NpyArray.FromInt32(indices, q, k), ["scores"] = NpyArray.FromFloat32(scores, q, k) };
    }

    private static Dictionary<string, NpyArray> TrainLogReg(NpyArray xArray, NpyArray yArray, int epochs, double learningRate, double l2)
    {
        int n = xArray.Shape[0], d = xArray.Shape[1];
        var x = xArray.Float32!;
        var y = yArray.DType == NpyDType.Float32 ? Array.ConvertAll(yArray.Float32!, v => (double)v) : Array.ConvertAll(yArray.Int32!, v => (double)v);
        var w = new double[d];
        double bias = 0;
        var loss = new float[epochs];
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            var gradient = new double[d];
            double biasGradient = 0, total = 0;
            for (var i = 0; i < n; i++)
            {
                var z = bias;
                for (var j = 0; j < d; j++)
                    z += w[j] * x[(i * d) + j];
                var p = 1 / (1 + Math.Exp(-z));
                total += -((y[i] * Math.Log(p)) + ((1 - y[i]) * Math.Log(1 - p)));
                for (var j = 0; j < d; j++)
                    gradient[j] += (p - y[i]) * x[(i * d) + j] / n;
                biasGradient += (p - y[i]) / n;
            }
            loss[epoch] = (float)((total / n) + (l2 / 2 * w.Sum(v => v * v)));
            for (var j = 0; j < d; j++)
                w[j] -= learningRate * (gradient[j] + (l2 * w[j]));
            bias -= learningRate * biasGradient;
        }
        var weights = w.Select(v => (float)v).Append((float)bias).ToArray();
        return new() { ["weights"] = NpyArray.FromFloat32(weights, d + 1), ["loss"] = NpyArray.FromFloat32(loss, epochs) };
    }

    private static Dictionary<string, NpyArray> MlpInfer(IReadOnlyDictionary<string, NpyArray> inputs, string activation)
    {
        NpyArray x = inputs["x"], w1 = inputs["w1"], b1 = inputs["b1"], w2 = inputs["w2"], b2 = inputs["b2"];
        int n = x.Shape[0], d = x.Shape[1], h = w1.Shape[1], o = w2.Shape[1];
        var y = new float[n * o];
        for (var i = 0; i < n; i++)
        {
            var hidden = new double[h];
            for (var c = 0; c < h; c++)
            {
                double sum = b1.Float32![c];
                for (var j = 0; j < d; j++)
                    sum += (double)x.Float32![(i * d) + j] * w1.Float32![(j * h) + c];
                hidden[c] = activation switch
                {
                    "relu" => Math.Max(0, sum),
                    "tanh" => Math.Tanh(sum),
                    "sigmoid" => 1 / (1 + Math.Exp(-sum)),
                    _ => sum,
                };
            }
            for (var c = 0; c < o; c++)
            {
                double sum = b2.Float32![c];
                for (var j = 0; j < h; j++)
                    sum += hidden[j] * w2.Float32![(j * o) + c];
                y[(i * o) + c] = (float)sum;
            }
        }
        return new() { ["y"] = NpyArray.FromFloat32(y, n, o) };
    }
}
