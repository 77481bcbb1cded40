using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Platform.Hosting.Health;
using Platform.Testing;

namespace Platform.Worker.Tests.Node;

/// <summary>
/// <see cref="ServiceProcess"/>, the fixture every end-to-end test starts services with, on a real worker: it is
/// ready only when the process it launched answers, and a restart keeps the port from other test processes.
/// </summary>
public sealed class ServiceProcessTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "platform-service-process-" + Guid.NewGuid().ToString("n"));
    private TestEnvironment _env = null!;
    private NodeGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("serviceprocess");
        _gateway = await NodeGateway.StartAsync(_env);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
        if (Directory.Exists(_dataDir))
            Directory.Delete(_dataDir, recursive: true);
    }

    private Dictionary<string, string?> WorkerSettings() => new()
    {
        ["Worker__NodeKey"] = _gateway.NodeKey,
        ["Worker__GatewayUrl"] = _gateway.BaseUrl.ToString(),
        ["Worker__DataDirectory"] = _dataDir,
        ["Worker__KernelCacheDirectory"] = Platform.Testing.Kernels.KernelCache.Directory,
        ["Worker__Backend"] = "simd",
    };

    [Fact]
    public async Task A_stranger_answering_200_as_the_service_on_its_port_does_not_make_it_ready()
    {
        // Another process on the port, answering readiness like a worker of an earlier launch would.
        var port = FreePort.Next();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        await using var stranger = builder.Build();
        stranger.MapGet("/health/ready", (HttpContext http) =>
        {
            http.Response.Headers[HealthIdentity.ServiceHeader] = "worker";
            http.Response.Headers[HealthIdentity.InstanceHeader] = "worker-an-earlier-launch";
            return "Healthy";
        });
        await stranger.StartAsync();

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(
            () => ServiceProcess.StartAsync("worker", _env, WorkerSettings(), TimeSpan.FromSeconds(60), port));

        // The worker could not bind the port and exited; the stranger's 200 was never taken for its readiness.
        Assert.Contains("before it was ready", failure.Message, StringComparison.Ordinal);
        Assert.Contains("answered by another process: worker instance worker-an-earlier-launch answered 200", failure.Message, StringComparison.Ordinal);
        await stranger.StopAsync();
    }

    [Fact]
    public async Task A_restart_keeps_the_port_reserved_while_down_and_is_ready_only_as_the_new_launch()
    {
        var first = await ServiceProcess.StartAsync("worker", _env, WorkerSettings());
        await using (first)
        {
            Assert.Equal(first.InstanceId, await AnsweringInstanceAsync(first));

            first.Kill();
            // Down, the port is still this test process's: another process asking for a port skips it.
            Assert.True(FreePort.IsReservedHere(first.Port));
            Assert.False(LockableByAnotherProcess(first.Port), $"port {first.Port} was free for other processes while its service was down");

            var second = await first.RestartAsync();
            await using (second)
            {
                Assert.Equal(first.Port, second.Port);
                Assert.NotEqual(first.ProcessId, second.ProcessId);
                Assert.NotEqual(first.InstanceId, second.InstanceId);
                Assert.Equal(second.InstanceId, await AnsweringInstanceAsync(second));
            }
        }
    }

    private static async Task<string?> AnsweringInstanceAsync(ServiceProcess service)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.GetAsync(new Uri(service.BaseUrl, "health/live"));
        Assert.Equal("worker", response.Headers.GetValues(HealthIdentity.ServiceHeader).Single());
        return response.Headers.TryGetValues(HealthIdentity.InstanceHeader, out var values) ? values.Single() : null;
    }

    // What another process does before it uses a port (FreePort in another test process, the platform script's free_port).
    internal static bool LockableByAnotherProcess(int port)
    {
        using var flock = Process.Start("flock", ["-n", Path.Combine(FreePort.LockDirectory, $"{port.ToString(CultureInfo.InvariantCulture)}.lock"), "true"]);
        flock.WaitForExit();
        return flock.ExitCode == 0;
    }
}
