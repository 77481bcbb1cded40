using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Platform.Testing;

namespace Platform.Hosting.Tests;

/// <summary>
/// <see cref="FreePort"/>: test processes run side by side, so a port one of them was given must stay out of the
/// others' hands until its server binds it, and while a restarted server is down.
/// </summary>
public sealed class FreePortTests
{
    [Fact]
    public void A_port_handed_out_stays_locked_against_other_processes()
    {
        var ports = Enumerable.Range(0, 5).Select(_ => FreePort.Next()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port =>
        {
            Assert.True(FreePort.IsReservedHere(port));
            // flock(1) is what the platform script takes a port with; another .NET process fails the same lock.
            Assert.Equal(1, Flock(port));
        });
    }

    [Fact]
    public async Task A_port_locked_by_another_process_is_never_handed_out()
    {
        // Another process holds the locks of the ports this process would try next (the pool is walked in order).
        var probe = FreePort.Next();
        var held = Enumerable.Range(1, 20).Select(i => probe + i).ToList();
        var holders = held.Select(port => Process.Start("flock", ["-n", "-o", LockFile(port), "sleep", "60"])).ToList();
        try
        {
            await Eventually.UntilAsync(() => Task.FromResult(held.All(port => Flock(port) == 1)), all => all, TimeSpan.FromSeconds(10),
                "the other process to hold its locks");

            var given = Enumerable.Range(0, 10).Select(_ => FreePort.Next()).ToList();

            Assert.Empty(given.Intersect(held));
        }
        finally
        {
            foreach (var holder in holders)
            {
                holder.Kill(entireProcessTree: true);
                holder.WaitForExit();
                holder.Dispose();
            }
        }
    }

    [Fact]
    public void Ports_come_from_below_the_kernels_ephemeral_range_and_are_bindable()
    {
        // Outgoing connections and binds to port 0 take ports from the ephemeral range: never one of ours by chance.
        var low = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split('\t', ' ')[0], CultureInfo.InvariantCulture);

        var port = FreePort.Next();

        Assert.InRange(port, 1024, low - 1);
        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
    }

    [Fact]
    public async Task The_test_brokers_erlang_distribution_port_is_below_the_ephemeral_range_and_locked()
    {
        // infra.sh once took AMQP + 20000, inside the ephemeral range, where a client socket held it in one run and the
        // broker died at start with dist_port_already_used. It takes a locked port like every other one now.
        var low = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split('\t', ' ')[0], CultureInfo.InvariantCulture);
        var infrastructure = await PlatformInfrastructure.GetAsync();

        using var overview = System.Text.Json.JsonDocument.Parse(await infrastructure.RabbitMqManagement.GetStringAsync("api/overview"));
        var dist = overview.RootElement.GetProperty("listeners").EnumerateArray()
            .Single(l => l.GetProperty("protocol").GetString() == "clustering").GetProperty("port").GetInt32();

        Assert.InRange(dist, 1024, low - 1);
        Assert.Equal(1, Flock(dist));
    }

    private static string LockFile(int port) => Path.Combine(FreePort.LockDirectory, port.ToString(CultureInfo.InvariantCulture) + ".lock");

    private static int Flock(int port)
    {
        using var flock = Process.Start("flock", ["-n", LockFile(port), "true"]);
        flock.WaitForExit();
        return flock.ExitCode;
    }
}
