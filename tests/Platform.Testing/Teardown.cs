namespace Platform.Testing;

/// <summary>
/// What fixtures' teardowns share. A teardown that throws fails its project's run with every test passed (xUnit's
/// "Test Class Cleanup Failure"), so a step that can fail for a moment (a busy broker's slow answer, a process's last
/// file) is tried again until a deadline. Once one step has run out its deadline (a server is gone), later teardowns try
/// each step once: a dead server fails the run at once instead of costing every remaining fixture its deadline.
/// </summary>
public static class Teardown
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(1);
    private static volatile bool gaveUp;

    /// <summary>
    /// Calls <paramref name="step"/> until <paramref name="done"/> accepts its result (see <see cref="Eventually"/>), for a
    /// minute or <paramref name="deadline"/>.
    /// </summary>
    public static async Task RetryAsync<T>(Func<Task<T>> step, Func<T, bool> done, string what, TimeSpan? deadline = null)
    {
        try
        {
            await Eventually.UntilAsync(step, done, gaveUp ? TimeSpan.Zero : deadline ?? Deadline, what);
        }
        catch (TimeoutException)
        {
            gaveUp = true;
            throw;
        }
    }

    /// <summary>
    /// Deletes <paramref name="path"/> and everything in it. A recursive delete that races a file still being created or
    /// closed (by a process that is stopping) fails with "Directory not empty"; it is tried again.
    /// </summary>
    public static Task DeleteFolderAsync(string path) => RetryAsync(
        () =>
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }

            return Task.FromResult(!Directory.Exists(path));
        },
        deleted => deleted,
        $"deleting {path}");

    /// <summary>
    /// Stops a fixture's service processes, then its environment (which stops whatever it still tracks and deletes its
    /// vhost and databases), then deletes its scratch folder: each step runs even when an earlier one threw.
    /// </summary>
    public static async Task StopAsync(IEnumerable<ServiceProcess> services, TestEnvironment? environment, string folder)
    {
        try
        {
            foreach (var service in services)
                await service.DisposeAsync();
        }
        finally
        {
            try
            {
                if (environment is not null)
                    await environment.DisposeAsync();
            }
            finally
            {
                await DeleteFolderAsync(folder);
            }
        }
    }

    /// <summary>An HTTP delete's answer that means the thing is gone: deleted now, or already.</summary>
    public static bool Gone(System.Net.HttpStatusCode status) => (int)status is >= 200 and < 300 || status == System.Net.HttpStatusCode.NotFound;
}
