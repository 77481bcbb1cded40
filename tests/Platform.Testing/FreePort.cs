using System.Net;
using System.Net.Sockets;

namespace Platform.Testing;

/// <summary>Free TCP ports on the loopback interface, for servers a test starts.</summary>
public static class FreePort
{
    private static readonly Lock Gate = new();
    private static readonly HashSet<int> Given = [];

    /// <summary>A port the kernel reports free now and that this process has not handed out before.</summary>
    public static int Next()
    {
        lock (Gate)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                // The kernel may offer a released port again, and callers pick several before binding any.
                if (Given.Add(port))
                {
                    return port;
                }
            }
        }
    }
}
