using System.Diagnostics;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.Contracts.Tests.Tensors;

/// <summary>Checks our files against real numpy (python3-numpy), in both directions.</summary>
public sealed class NumpyInteropTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("npy-interop-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Numpy_reads_what_we_write()
    {
        var arrays = new Dictionary<string, NpyArray>
        {
            ["vector"] = NpyArray.FromFloat32([1.5f, -2.25f, 0f, 1024f, -0.125f], 5),
            ["matrix"] = NpyArray.FromInt32([.. Enumerable.Range(-6, 12)], 3, 4),
            ["scalar"] = NpyArray.FromFloat32([3.5f]),
            ["empty"] = NpyArray.FromInt32([], 0, 2),
            ["extremes"] = NpyArray.FromInt32([int.MinValue, int.MaxValue], 1, 1, 2),
        };
        foreach (var (name, array) in arrays)
        {
            using var file = File.Create(Path.Combine(_dir, name + ".npy"));
            Npy.Write(file, array);
        }

        var printed = Python(
            "import numpy as np, sys\n" +
            "for name in ['vector', 'matrix', 'scalar', 'empty', 'extremes']:\n" +
            "    a = np.load(sys.argv[1] + '/' + name + '.npy')\n" +
            "    print(name, a.dtype, a.shape, a.tolist())\n");

        Assert.Equal(
            """
            vector float32 (5,) [1.5, -2.25, 0.0, 1024.0, -0.125]
            matrix int32 (3, 4) [[-6, -5, -4, -3], [-2, -1, 0, 1], [2, 3, 4, 5]]
            scalar float32 () 3.5
            empty int32 (0, 2) []
            extremes int32 (1, 1, 2) [[[-2147483648, 2147483647]]]

            """,
            printed);
    }

    [Fact]
    public void We_read_what_numpy_writes_in_both_format_versions()
    {
        Python(
            "import numpy as np, sys\n" +
            "a = (np.arange(1000, dtype=np.float32) * 0.5).reshape(10, 4, 25)\n" +
            "np.save(sys.argv[1] + '/v1.npy', a)\n" +
            "with open(sys.argv[1] + '/v2.npy', 'wb') as f:\n" +
            "    np.lib.format.write_array(f, np.arange(-50, 50, dtype=np.int32), version=(2, 0))\n");

        using (var v1 = File.OpenRead(Path.Combine(_dir, "v1.npy")))
        {
            var a = Npy.Read(v1);
            Assert.Equal([10, 4, 25], a.Shape);
            Assert.Equal(Enumerable.Range(0, 1000).Select(i => i * 0.5f), a.Float32!);
        }

        var b = Npy.Read(File.ReadAllBytes(Path.Combine(_dir, "v2.npy")));
        Assert.Equal([100], b.Shape);
        Assert.Equal(Enumerable.Range(-50, 100), b.Int32!);
    }

    // Runs a script with the temp folder as argv[1] and returns what it printed.
    private string Python(string script)
    {
        var start = new ProcessStartInfo(PythonWithNumpy())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(_dir);

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), "python did not finish within 60 s");
        output.WriteLine(stdout);
        Assert.True(process.ExitCode == 0, $"python failed ({process.ExitCode}): {stderr.Result}");
        return stdout;
    }

    // Debian's python3-numpy installs into /usr/bin/python3; a python3 earlier on PATH (pyenv, venv)
    // may lack numpy, so prefer the system interpreter when there is one.
    private static string PythonWithNumpy() => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}
