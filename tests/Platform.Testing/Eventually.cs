using System.Diagnostics;
using System.Text.Json;

namespace Platform.Testing;

/// <summary>Waits for a condition in a distributed system by polling it against a deadline, never a fixed sleep.</summary>
public static class Eventually
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Calls <paramref name="probe"/> until <paramref name="done"/> accepts its result and returns that result.
    /// A probe that throws counts as not done yet (the thing probed may not be up); the timeout message
    /// names <paramref name="what"/> and shows the last value and the last exception.
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        var attempts = 0;
        var last = default(T);
        Exception? lastError = null;
        while (true)
        {
            attempts++;
            try
            {
                last = await probe();
                lastError = null;
                if (done(last))
                {
                    return last;
                }
            }
            catch (Exception ex)
            {
                lastError = ex;
            }

            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                var lastText = lastError is null ? Describe(last) : $"(probe threw {lastError.GetType().Name}: {lastError.Message})";
                throw new TimeoutException(
                    $"Timed out after {timeout.TotalSeconds:0.#} s ({attempts} attempts) waiting for {what}; last value: {lastText}",
                    lastError);
            }

            // At least 1 ms: a shorter delay completes at once and the loop would spin until the deadline.
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Clamp(left.TotalMilliseconds, 1, PollInterval.TotalMilliseconds)));
        }
    }

    /// <summary>Waits until <paramref name="condition"/> returns true.</summary>
    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        UntilAsync(condition, ok => ok, timeout, what);

    private static string Describe<T>(T value)
    {
        // JSON shows the contents of lists and objects, where ToString would only name the type.
        try
        {
            return JsonSerializer.Serialize(value);
        }
        catch (Exception)
        {
            return value?.ToString() ?? "null";
        }
    }
}
