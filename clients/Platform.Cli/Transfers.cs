using Spectre.Console;

namespace Platform.Cli;

/// <summary>Progress bars for uploads and downloads, on stderr and only when it is a terminal.</summary>
public static class Transfers
{
    public static async Task<T> WithProgressAsync<T>(this Session session, string description, long? total, Func<IProgress<long>?, Task<T>> work)
    {
        var console = session.Host.Status;
        if (!console.Profile.Capabilities.Interactive || session.Json)
            return await work(null);
        return await console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(1, total ?? 1));
                task.IsIndeterminate = total is null;
                var result = await work(new Reporter(bytes => task.Value = bytes));
                task.Value = task.MaxValue;
                return result;
            });
    }

    /// <summary>Reports on the caller's thread: Progress&lt;T&gt; would post to the thread pool and reorder updates.</summary>
    private sealed class Reporter(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
