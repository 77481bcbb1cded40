using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Platform.Testing;

/// <summary>
/// Free TCP ports on the loopback interface, for servers a test starts, reserved machine-wide for the life of this
/// process.
/// </summary>
/// <remarks>
/// A port found free is released before the server binds it, and several test processes (and ./platform test,
/// and other checkouts) pick ports side by side. Two things keep a port ours until the server holds it, and while a
/// restarted server is down:
/// <list type="bullet">
/// <item>Ports come from below the kernel's ephemeral range, which the kernel hands out to every outgoing connection
/// and every bind to port 0: nothing picks a port there by chance.</item>
/// <item>Each port handed out is locked (flock) through a file under <see cref="LockDirectory"/> that this process
/// keeps open until it exits, when the kernel drops the lock even after a crash. Another process taking ports this
/// way skips a locked one; the platform script's free_port does the same with flock(1).</item>
/// </list>
/// </remarks>
public static class FreePort
{
    /// <summary>Where the per-port lock files live; shared by every process on the machine.</summary>
    public static readonly string LockDirectory = Path.Combine(Path.GetTempPath(), "platform-test-ports");

    private static readonly Lock Gate = new();
    private static readonly Dictionary<int, FileStream> Held = [];
    private static readonly (int First, int Last) Pool = FindPool();
    private static int next = -1;

    /// <summary>A port that is free now and reserved for this process: no process that asks this class (or the platform script) gets it too.</summary>
    public static int Next()
    {
        lock (Gate)
        {
            var size = Pool.Last - Pool.First + 1;
            if (next < 0)
            {
                // Processes start at different places in the pool, so they rarely contend for the same lock.
                next = (int)((uint)Environment.ProcessId * 7919u % (uint)size);
            }

            for (var tried = 0; tried < size; tried++)
            {
                var port = Pool.First + next;
                next = (next + 1) % size;
                if (Held.ContainsKey(port) || TryLock(port) is not { } held)
                {
                    continue;
                }

                if (IsFree(port))
                {
                    Held.Add(port, held);
                    return port;
                }

                // Something that does not take part in the locking listens there: leave it.
                held.Dispose();
            }

            throw new InvalidOperationException($"No free port left in {Pool.First}-{Pool.Last} ({Held.Count} held by this process).");
        }
    }

    /// <summary>Whether this process holds the reservation of <paramref name="port"/> (for tests of this class).</summary>
    public static bool IsReservedHere(int port)
    {
        lock (Gate)
        {
            return Held.ContainsKey(port);
        }
    }

    private static FileStream? TryLock(int port)
    {
        Directory.CreateDirectory(LockDirectory);
        try
        {
            // On Unix .NET takes flock(LOCK_EX | LOCK_NB) for FileShare.None and fails if another process holds it.
            return new FileStream(
                Path.Combine(LockDirectory, port.ToString(CultureInfo.InvariantCulture) + ".lock"),
                FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            // Another user's lock file: that user's reservation.
            return null;
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            // Servers listen on 127.0.0.1 or on every interface; a port is free only if both binds work.
            foreach (var address in new[] { IPAddress.Loopback, IPAddress.Any })
            {
                using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(address, port));
            }

            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // Below the ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default): 12000 ports ending just
    // under it, or above it when it starts too low to leave room.
    private static (int First, int Last) FindPool()
    {
        var (low, high) = (32768, 60999);
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range")
                .Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            (low, high) = (int.Parse(range[0], CultureInfo.InvariantCulture), int.Parse(range[1], CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            // Not Linux: keep the default range.
        }

        if (low - 1 - 10_000 >= 2_000)
        {
            return (Math.Max(10_000, low - 12_000), low - 1);
        }

        return (high + 1, 65_535);
    }
}
