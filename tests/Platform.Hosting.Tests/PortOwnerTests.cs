using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Platform.Testing;

namespace Platform.Hosting.Tests;

/// <summary><see cref="PortOwner"/>: whose socket listens on a port, for servers that cannot say who they are.</summary>
public sealed class PortOwnerTests
{
    [Fact]
    public void The_process_listening_on_a_port_owns_it_and_another_process_does_not()
    {
        var port = FreePort.Next();
        using var other = Process.Start("sleep", ["60"]);
        try
        {
            Assert.False(PortOwner.IsListenedOnBy(Environment.ProcessId, port));

            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();

            Assert.True(PortOwner.IsListenedOnBy(Environment.ProcessId, port));
            Assert.False(PortOwner.IsListenedOnBy(other.Id, port));
        }
        finally
        {
            other.Kill();
            other.WaitForExit();
        }
    }

    [Fact]
    public async Task A_child_process_listening_counts_for_its_parent()
    {
        // moto_server runs under its launcher (bash, pyenv's shims): the server may be a descendant of the process started.
        var port = FreePort.Next();
        using var parent = Process.Start("bash", ["-c", $"python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {port})); s.listen(); time.sleep(60)' & wait"]);
        try
        {
            await Eventually.UntilAsync(() => Task.FromResult(PortOwner.IsListenedOnBy(parent.Id, port)), owned => owned,
                TimeSpan.FromSeconds(20), "the child to listen");
            Assert.False(PortOwner.IsListenedOnBy(Environment.ProcessId, port));
        }
        finally
        {
            parent.Kill(entireProcessTree: true);
            parent.WaitForExit();
        }
    }
}
