namespace Platform.Testing;

/// <summary>Command-line tools the tests run (moto_server, openapi-spec-validator...).</summary>
public static class Tools
{
    /// <summary>
    /// The tool's path on PATH, or under pyenv's shims (where the machine image installs Python tools: a CI
    /// shell or service manager may start the tests without pyenv on PATH); null when it is not installed.
    /// </summary>
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".pyenv", "shims"))
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
