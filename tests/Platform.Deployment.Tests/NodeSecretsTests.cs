using System.Diagnostics;
using System.Text.RegularExpressions;
using Platform.Testing;

namespace Platform.Deployment.Tests;

/// <summary>
/// A node (worker) is an operator's machine, outside the trust boundary: however the network is deployed it gets the
/// gateway's URL, its operator's key and non-secret options, never a service credential (database or services'
/// broker login) or a platform secret (admin key, key-hash secret). It enrolls through the gateway for a broker login
/// of its own, which the scheduler makes through RabbitMQ's management API.
/// </summary>
public sealed partial class NodeSecretsTests : IDisposable
{
    private static readonly string Root = RepoRoot.Find();
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("platform-node-env-");

    public void Dispose() => _dir.Delete(recursive: true);

    public static TheoryData<string> ComposeFiles => ["compose.yaml", "compose.cluster.yaml"];

    [Theory]
    [MemberData(nameof(ComposeFiles))]
    public void Compose_gives_the_worker_no_service_credential_or_secret(string file)
    {
        var services = ComposeYaml.Load(Path.Combine(Root, file)).Map("services");
        var workers = services.Where(s => ((Dictionary<string, object>)s.Value).Map("build").Scalar("dockerfile") == "services/worker/Dockerfile").ToList();

        var (name, worker) = Assert.Single(workers);
        var env = ((Dictionary<string, object>)worker).Map("environment");
        Assert.Equal("http://gateway:8080", env.Scalar("Worker__GatewayUrl"));
        // A node key the operator made for the replicas, never the operator's own key.
        Assert.Equal("${WORKER_NODE_KEY:-}", env.Scalar("Worker__NodeKey"));
        Assert.DoesNotContain(env.Keys, k => k.Contains("OperatorKey", StringComparison.OrdinalIgnoreCase));
        foreach (var (key, value) in env)
        {
            Assert.False(ServiceSetting().IsMatch(key), $"{file}: {name} has {key}, a service's setting");
            // Only the operator's own variables: none of the deployment's passwords, keys or cookies.
            foreach (Match variable in Variable().Matches((string)value))
                Assert.StartsWith("WORKER_", variable.Groups["name"].Value, StringComparison.Ordinal);
            Assert.DoesNotMatch(EmbeddedCredential(), (string)value);
        }
    }

    [Theory]
    [MemberData(nameof(ComposeFiles))]
    public void Compose_gives_the_schedulers_the_management_api_of_a_broker_that_runs_it(string file)
    {
        var services = ComposeYaml.Load(Path.Combine(Root, file)).Map("services").ToDictionary(s => s.Key, s => (Dictionary<string, object>)s.Value);
        var schedulers = services.Where(s => s.Value.Map("build").Scalar("dockerfile") == "services/scheduler/Dockerfile").ToList();

        Assert.NotEmpty(schedulers);
        foreach (var (name, scheduler) in schedulers)
        {
            var url = new Uri(scheduler.Map("environment").Scalar("RabbitMq__ManagementUrl") ?? throw new Xunit.Sdk.XunitException($"{file}: {name} has no RabbitMq__ManagementUrl"));
            Assert.Equal(15672, url.Port);
            Assert.True(services.TryGetValue(url.Host, out var broker), $"{file}: {name}'s management URL names {url.Host}, not a service");
            Assert.EndsWith("-management", broker!.Scalar("image"), StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// Runs the very functions ./platform up starts its nodes with, with a stand-in for dotnet that records its
    /// environment and one for curl that answers as the gateway makes a node key, while the script's own environment
    /// holds every secret it holds during up. The node gets the node key, never its operator's key.
    /// </summary>
    [Fact]
    public async Task Platform_up_starts_its_nodes_with_the_gateway_url_and_a_node_key_only()
    {
        var script = await File.ReadAllTextAsync(Path.Combine(Root, "platform"));
        var functions = string.Join('\n', new[] { "start_service", "start_node", "node_key" }.Select(name =>
            Regex.Match(script, $@"^{name}\(\) \{{\n.*?^\}}\n", RegexOptions.Multiline | RegexOptions.Singleline) is { Success: true } m
                ? m.Value : throw new Xunit.Sdk.XunitException($"./platform has no function {name}")));
        Assert.Matches(@"key=\$\(node_key ""\$i"" ""\$key""\)\n\s*start_node ""\$i"" ""\$key""", script);

        var fake = Directory.CreateDirectory(Path.Combine(_dir.FullName, "bin"));
        var recorded = Path.Combine(_dir.FullName, "node.env");
        var dotnet = Path.Combine(fake.FullName, "dotnet");
        await File.WriteAllTextAsync(dotnet, $"#!/bin/sh\nenv > '{recorded}'\n");
        var curl = Path.Combine(fake.FullName, "curl");
        var curlArgs = Path.Combine(_dir.FullName, "curl.args");
        await File.WriteAllTextAsync(curl, $$"""
            #!/bin/sh
            echo "$@" >> '{{curlArgs}}'
            echo '{"id":"nk_0123","key":"pk_node_key_of_node_1","workers":1,"createdAt":"2026-01-01T00:00:00Z"}'
            """ + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dotnet, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.SetUnixFileMode(curl, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var dll = Path.Combine(_dir.FullName, "services", "worker", "bin", "Release", "net10.0", "Platform.Worker.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(dll)!);
        await File.WriteAllTextAsync(dll, "");
        var state = Path.Combine(_dir.FullName, "state");

        var run = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true };
        run.ArgumentList.Add("-c");
        run.ArgumentList.Add($$"""
            set -euo pipefail
            die() { echo "$*" >&2; exit 1; }
            ROOT='{{_dir.FullName}}' STATE='{{state}}' CONFIGURATION=Release GATEWAY_PORT=8080 WORKER_BASE_PORT=8090
            mkdir -p "$STATE/logs" "$STATE/pids"
            PATH='{{fake.FullName}}':$PATH
            {{functions}}
            key=$(node_key 1 pk_operator_of_node_1)
            start_node 1 "$key"
            wait
            """);
        // What the script holds while it starts nodes (start_infra, admin_key and key_hash_secret export them).
        run.Environment["Platform__AdminKey"] = "pk_admin_SECRET1";
        run.Environment["Platform__KeyHashSecret"] = "KEYHASHSECRET2";
        run.Environment["ConnectionStrings__RabbitMq"] = "amqp://platform:RABBITPASS3@127.0.0.1:5673/";
        run.Environment["ConnectionStrings__Postgres"] = "Host=127.0.0.1;Port=5433;Username=platform;Password=PGPASS4";
        using var bash = Process.Start(run)!;
        var stderr = bash.StandardError.ReadToEndAsync();
        await bash.WaitForExitAsync();
        Assert.True(bash.ExitCode == 0, $"bash failed: {await stderr}");

        var env = (await File.ReadAllLinesAsync(recorded)).Where(l => l.Contains('=', StringComparison.Ordinal))
            .ToDictionary(l => l[..l.IndexOf('=', StringComparison.Ordinal)], l => l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        Assert.Equal("pk_node_key_of_node_1", env["Worker__NodeKey"]);
        // The node key was made with the operator's key, which the node never sees.
        Assert.Contains("-X POST http://127.0.0.1:8080/v1/account/node-keys -H Authorization: Bearer pk_operator_of_node_1", await File.ReadAllTextAsync(curlArgs), StringComparison.Ordinal);
        Assert.Contains("nk_0123 pk_node_key_of_node_1", await File.ReadAllTextAsync(Path.Combine(state, "worker-1", "node-key")), StringComparison.Ordinal);
        Assert.Equal("http://127.0.0.1:8080", env["Worker__GatewayUrl"]);
        Assert.Equal(Path.Combine(state, "worker-1"), env["Worker__DataDirectory"]);
        var all = string.Join('\n', env.Select(e => $"{e.Key}={e.Value}"));
        foreach (var secret in new[] { "SECRET1", "KEYHASHSECRET2", "RABBITPASS3", "PGPASS4", "pk_operator_of_node_1" })
            Assert.DoesNotContain(secret, all, StringComparison.Ordinal);
        Assert.DoesNotContain(env.Keys, ServiceSetting().IsMatch);
    }

    [GeneratedRegex(@"^(ConnectionStrings__|Platform__|Upstreams__|Storage__)|Password|Secret|AdminKey", RegexOptions.IgnoreCase)]
    private static partial Regex ServiceSetting();

    [GeneratedRegex(@"\$\{(?<name>[A-Za-z0-9_]+)")]
    private static partial Regex Variable();

    [GeneratedRegex(@"Password=|//[^/@]+:[^/@]*@")]
    private static partial Regex EmbeddedCredential();
}
