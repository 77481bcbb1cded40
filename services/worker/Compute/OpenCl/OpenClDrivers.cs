namespace Platform.Worker.Compute.OpenCl;

/// <summary>
/// The OpenCL drivers registered on this machine, read from the ICD loader's vendor files without loading anything:
/// loading the loader loads every driver, and PoCL's (LLVM) alone is tens of MiB of a node's memory.
/// </summary>
public static class OpenClDrivers
{
    /// <summary>
    /// True when every registered driver is PoCL, which runs OpenCL on this machine's CPU (the cores the SIMD backend
    /// already uses); <paramref name="drivers"/> names them. False when there is none to read or any other driver.
    /// </summary>
    public static bool OnlyCpu(out string drivers)
    {
        // The loader's own override, as ocl-icd reads it: a folder of .icd files.
        var folder = Environment.GetEnvironmentVariable("OCL_ICD_VENDORS") is { Length: > 0 } custom && Directory.Exists(custom) ? custom : "/etc/OpenCL/vendors";
        var libraries = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*.icd").Select(f => File.ReadAllText(f).Trim()).Where(l => l.Length > 0).ToList()
            : [];
        drivers = string.Join(", ", libraries);
        return libraries.Count > 0 && libraries.All(l => Path.GetFileName(l).Contains("pocl", StringComparison.OrdinalIgnoreCase));
    }
}
