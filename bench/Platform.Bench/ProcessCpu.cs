using System.Diagnostics;
using System.Globalization;

namespace Platform.Bench;

/// <summary>
/// CPU time of processes as the kernel counts it (/proc/&lt;pid&gt;/stat, in clock ticks), so a benchmark can
/// say how many milliseconds of CPU each process spent per job between two snapshots.
/// </summary>
public static class ProcessCpu
{
    /// <summary>The fields of /proc/&lt;pid&gt;/stat the benchmark uses (field numbers as in proc(5)).</summary>
    /// <param name="ParentId">field 4, ppid</param>
    /// <param name="UserTicks">field 14, utime</param>
    /// <param name="SystemTicks">field 15, stime</param>
    /// <param name="ChildUserTicks">field 16, cutime: user time of children that exited and were waited for</param>
    /// <param name="ChildSystemTicks">field 17, cstime</param>
    public sealed record Stat(int ParentId, long UserTicks, long SystemTicks, long ChildUserTicks, long ChildSystemTicks)
    {
        public long OwnTicks => UserTicks + SystemTicks;

        public long ReapedChildTicks => ChildUserTicks + ChildSystemTicks;
    }

    /// <summary>Clock ticks per second (sysconf(_SC_CLK_TCK), 100 on every Linux the project runs on).</summary>
    public static readonly long TicksPerSecond = ReadTicksPerSecond();

    /// <summary>
    /// Parses the text of /proc/&lt;pid&gt;/stat. Field 2 is the command name in parentheses and may itself hold
    /// spaces and ')' (a process may name itself anything), so the fields are counted from the last ')'.
    /// </summary>
    public static Stat Parse(string text)
    {
        var close = text.LastIndexOf(')');
        if (close < 0)
        {
            throw new FormatException($"not a /proc/<pid>/stat line: '{text}'");
        }

        // After ") " comes field 3 (state), so field n is at index n - 3.
        var fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (fields.Length < 15)
        {
            throw new FormatException($"/proc/<pid>/stat has {fields.Length + 2} fields, expected at least 17: '{text}'");
        }

        return new Stat(
            int.Parse(fields[4 - 3], CultureInfo.InvariantCulture),
            long.Parse(fields[14 - 3], CultureInfo.InvariantCulture),
            long.Parse(fields[15 - 3], CultureInfo.InvariantCulture),
            long.Parse(fields[16 - 3], CultureInfo.InvariantCulture),
            long.Parse(fields[17 - 3], CultureInfo.InvariantCulture));
    }

    /// <summary>The process's stat, or null when it is gone (or not readable).</summary>
    public static Stat? Read(int pid)
    {
        try
        {
            return Parse(File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat"));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The command name (/proc/&lt;pid&gt;/comm), or null when the process is gone.</summary>
    public static string? Name(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/comm").Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Ticks the process itself has used (utime + stime of all its threads), or null when it is gone.</summary>
    public static long? OwnTicks(int pid) => Read(pid)?.OwnTicks;

    /// <summary>
    /// Ticks of a process and all its children, dead or alive: its own, those of children it has reaped (cutime +
    /// cstime) and those of its live children. For Postgres's postmaster this is the whole server: a backend that
    /// ends between two snapshots moves from "live child" to "reaped", so it is neither lost nor counted twice.
    /// </summary>
    public static long? TreeTicks(int pid)
    {
        var root = Read(pid);
        if (root is null)
        {
            return null;
        }

        var ticks = root.OwnTicks + root.ReapedChildTicks;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var child)
                && Read(child) is { } stat && stat.ParentId == pid)
            {
                ticks += stat.OwnTicks;
            }
        }

        return ticks;
    }

    public static double Milliseconds(long ticks) => ticks * 1000.0 / TicksPerSecond;

    private static long ReadTicksPerSecond()
    {
        try
        {
            using var getconf = Process.Start(new ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true, UseShellExecute = false });
            if (getconf is not null)
            {
                var text = getconf.StandardOutput.ReadToEnd().Trim();
                getconf.WaitForExit();
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var hz) && hz > 0)
                {
                    return hz;
                }
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // no getconf: fall through to Linux's fixed USER_HZ
        }

        return 100;
    }
}
