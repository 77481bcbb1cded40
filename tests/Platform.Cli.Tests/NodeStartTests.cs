using System.Text;
using System.Text.RegularExpressions;
using Platform.Client;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.Cli.Tests;

/// <summary><c>node start</c> against a real network: an operator with credits joins, works and stops in one command.</summary>
public sealed class NodeStartTests(CliNetwork network, ITestOutputHelper output) : IClassFixture<CliNetwork>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("platform-node-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Operator_stakes_runs_a_node_that_earns_and_stops_it_with_ctrl_c()
    {
        var operatorAccount = await network.CreateAccountAsync("operator", CliNetwork.OperatorStake);
        var stdout = new LockedWriter();
        var stderr = new LockedWriter();
        var env = new Dictionary<string, string?>
        {
            ["PLATFORM_URL"] = network.Gateway.BaseUrl.ToString(),
            ["PLATFORM_KEY"] = operatorAccount.Key,
            ["HOME"] = _dir.FullName,
            // A shell that happens to hold the services' broker login: the node must not get it.
            ["ConnectionStrings__RabbitMq"] = network.Environment.RabbitMqUri,
        };
        using var stop = new CancellationTokenSource();
        // A region of its own, so the job below can only run on this node.
        var node = Cli.RunAsync(["node", "start", "--region", "cli-node", "--data", Path.Combine(_dir.FullName, "node")],
            CliHost.Plain(stdout, stderr, env), stop.Token);
        try
        {
            await Platform.Testing.Eventually.UntilAsync(() => Task.FromResult(stdout.ToString().Contains(" online ", StringComparison.Ordinal) || node.IsCompleted),
                TimeSpan.FromSeconds(120), "the node listed online");
            Assert.False(node.IsCompleted, $"node start ended early: {stderr}");
            Assert.Contains($"staked {CliNetwork.OperatorStake} credits", stderr.ToString(), StringComparison.Ordinal);

            // The running worker holds a node key and the gateway's URL: not the operator's key (though the shell that
            // ran the command holds it in PLATFORM_KEY), and no credential of the network's.
            var pid = Regex.Match(stderr.ToString(), @"worker started \(pid (\d+)\)").Groups[1].Value;
            var environ = (await File.ReadAllTextAsync($"/proc/{pid}/environ")).Split('\0');
            Assert.DoesNotContain(environ, e => e.Contains(operatorAccount.Key, StringComparison.Ordinal));
            var nodeKey = Assert.Single(environ, e => e.StartsWith("Worker__NodeKey=", StringComparison.Ordinal))["Worker__NodeKey=".Length..];
            Assert.Contains($"Worker__GatewayUrl={network.Gateway.BaseUrl}", environ);
            Assert.Contains(nodeKey, await File.ReadAllTextAsync(Path.Combine(_dir.FullName, "node", "node-key.json")), StringComparison.Ordinal);
            // The node key is the operator's (the node enrolled with it) but may not act as the operator.
            using (var asNode = network.Client(nodeKey))
            {
                var refused = await Assert.ThrowsAsync<PlatformApiException>(() => asNode.StakeAsync(1m));
                Assert.Equal(System.Net.HttpStatusCode.Forbidden, refused.StatusCode);
            }
            var servicesPassword = Uri.UnescapeDataString(new Uri(network.Environment.RabbitMqUri).UserInfo.Split(':', 2)[1]);
            foreach (var secret in new[] { servicesPassword, network.AdminKey, network.KeyHashSecret })
                Assert.DoesNotContain(environ, e => e.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(environ, e => e.StartsWith("ConnectionStrings__", StringComparison.Ordinal));

            var client = await network.CreateAccountAsync("client", 10m);
            using var http = network.Client(client.Key);
            var a = await http.PutBlobAsync(new MemoryStream(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f], 3))));
            var job = await http.SubmitJobAsync(new SubmitJobRequest
            {
                Kernel = "vector-add",
                Inputs = new Dictionary<string, string> { ["a"] = a.Cid, ["b"] = a.Cid },
                Requirements = new RequirementsRequest(Region: "cli-node"),
            });
            var done = await http.WatchAsync(job.Id).OfType<JobStatusEvent>().LastAsync();
            Assert.Equal("completed", done.Status);

            // The live view shows what the node earned.
            await Platform.Testing.Eventually.UntilAsync(() => Task.FromResult(Regex.IsMatch(stdout.ToString(), @"earned 0\.\d*[1-9]")),
                TimeSpan.FromSeconds(30), "the node's earnings shown");
        }
        finally
        {
            await stop.CancelAsync();
            var code = await node;
            output.WriteLine($"$ platform node start\n{stdout}{stderr}(exit {code})");
        }
        Assert.Equal(0, await node);
        Assert.Contains("the worker stopped", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The command writes from its own task while the test reads.</summary>
    private sealed class LockedWriter : StringWriter
    {
        private readonly Lock _lock = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            lock (_lock)
                base.Write(value);
        }

        public override void Write(string? value)
        {
            lock (_lock)
                base.Write(value);
        }

        public override void Write(char[] buffer, int index, int count)
        {
            lock (_lock)
                base.Write(buffer, index, count);
        }

        public override string ToString()
        {
            lock (_lock)
                return base.ToString();
        }
    }
}
