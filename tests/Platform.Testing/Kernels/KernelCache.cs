namespace Platform.Testing.Kernels;

/// <summary>
/// Where every test process keeps compiled OpenCL programs. One folder, never deleted: PoCL reads its cache
/// folder once per process, so a folder a test deletes would break every later OpenCL test in that process,
/// and sharing it across runs means each kernel is compiled once per machine.
/// </summary>
public static class KernelCache
{
    public static string Directory { get; } = Path.Combine(Path.GetTempPath(), "platform-test-kernels");
}
