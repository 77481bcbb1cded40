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
        drivers = "";
        // The loader's own overrides (a list of libraries, or a folder or file of its choosing): whatever they name is
        // not read here, so OpenCL is probed as usual.
        if (Environment.GetEnvironmentVariable("OCL_ICD_FILENAMES") is { Length: > 0 })
            return false;
        var folder = Environment.GetEnvironmentVariable("OCL_ICD_VENDORS") is { Length: > 0 } custom ? custom : "/etc/OpenCL/vendors";
        if (!Directory.Exists(folder))
            return false;
        try
        {
            var libraries = Directory.EnumerateFiles(folder, "*.icd").Select(f => File.ReadAllText(f).Trim()).Where(l => l.Length > 0).ToList();
            drivers = string.Join(", ", libraries);
            // PoCL can drive a GPU too (pocl-cuda), but as the only driver here it is the CPU's in practice; naming
            // opencl still opens whatever it drives.
            return libraries.Count > 0 && libraries.All(l => Path.GetFileName(l).Contains("pocl", StringComparison.OrdinalIgnoreCase));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A vendor file that cannot be read: let the loader decide, as before.
            return false;
        }
    }
}
