using System.Globalization;

namespace Platform.Testing;

/// <summary>
/// Which process listens on a TCP port, from /proc: for servers started by a test that have no way to say who they
/// are (moto), so a test never takes another process's answer on the port for its own server's.
/// </summary>
public static class PortOwner
{
    /// <summary>
    /// Whether process <paramref name="pid"/> or one of its descendants holds a socket listening on
    /// <paramref name="port"/>.
    /// </summary>
    public static bool IsListenedOnBy(int pid, int port)
    {
        var sockets = ListeningSockets(port).Select(inode => $"socket:[{inode}]").ToHashSet(StringComparer.Ordinal);
        return sockets.Count > 0 && ProcessTree(pid).Any(process => OpenFiles(process).Any(sockets.Contains));
    }

    // /proc/net/tcp{,6}: "sl local_address rem_address st ... inode", addresses as HEXIP:HEXPORT, state 0A = LISTEN.
    private static IEnumerable<string> ListeningSockets(int port)
    {
        var hexPort = port.ToString("X4", CultureInfo.InvariantCulture);
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
                continue;
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && fields[1].EndsWith(":" + hexPort, StringComparison.Ordinal) && fields[3] == "0A")
                    yield return fields[9];
            }
        }
    }

    private static IEnumerable<int> ProcessTree(int pid)
    {
        yield return pid;
        var children = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task/{pid.ToString(CultureInfo.InvariantCulture)}/children";
        string text;
        try
        {
            text = File.ReadAllText(children);
        }
        catch (IOException)
        {
            yield break;
        }

        foreach (var child in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var descendant in ProcessTree(int.Parse(child, CultureInfo.InvariantCulture)))
                yield return descendant;
        }
    }

    private static IEnumerable<string> OpenFiles(int pid)
    {
        string[] fds;
        try
        {
            fds = Directory.GetFiles($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/fd");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var fd in fds)
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (target is not null)
                yield return target;
        }
    }
}
