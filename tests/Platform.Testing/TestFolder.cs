namespace Platform.Testing;

/// <summary>The scratch folders that a fixture's service processes wrote to.</summary>
public static class TestFolder
{
    /// <summary>
    /// Deletes <paramref name="path"/> and everything in it, trying again until a deadline: a recursive delete that
    /// races a file still being created or closed (by a process that is stopping) fails with "Directory not empty",
    /// and a fixture's teardown that throws fails its project's run with every test passed.
    /// </summary>
    public static Task DeleteAsync(string path) => Eventually.UntilAsync(
        () =>
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }

            return Task.FromResult(!Directory.Exists(path));
        },
        TimeSpan.FromSeconds(30),
        $"deleting {path}");
}
