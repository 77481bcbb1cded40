namespace Platform.Testing;

public static class RepoRoot
{
    /// <summary>PLATFORM_REPO_ROOT if set (binaries outside the checkout), else the folder above the test binaries holding Platform.sln.</summary>
    public static string Find()
    {
        var configured = Environment.GetEnvironmentVariable("PLATFORM_REPO_ROOT");
        if (!string.IsNullOrEmpty(configured))
            return Path.GetFullPath(configured);

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Platform.sln")))
                return dir.FullName;
        }

        throw new InvalidOperationException($"No Platform.sln above {AppContext.BaseDirectory}");
    }
}
