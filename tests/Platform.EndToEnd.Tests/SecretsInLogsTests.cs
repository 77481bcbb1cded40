using System.Net;
using System.Net.Http.Json;
using Npgsql;
using Platform.Contracts.Tensors;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Secrets never reach a log: after accounts are made, a job runs and a wrong key is tried, no service's log holds
/// the admin key, an API key (good or bad), the key-hash secret, the gateway secret, or the RabbitMQ or Postgres password.
/// </summary>
public sealed class SecretsInLogsTests(Network network) : IClassFixture<Network>
{
    [Fact]
    public async Task No_service_logs_a_key_the_key_hash_secret_or_a_password()
    {
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        var a = await http.PinAsync(NpyArray.FromFloat32([1f, 2f, 3f], 3));
        var b = await http.PinAsync(NpyArray.FromFloat32([4f, 5f, 6f], 3));
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = a.Cid, b = b.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = await submitted.Content.ReadFromJsonAsync<Job>(Api.Json);
        var done = await http.WaitForAsync(job!.Id, j => j.Status is "completed" or "failed", "the job to finish");
        Assert.Equal("completed", done.Status);
        var wrongKey = client.Key[..^4] + "zzzz";
        using (var wrong = network.Client(wrongKey))
            Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync(new Uri("/v1/account", UriKind.Relative))).StatusCode);

        var secrets = new Dictionary<string, string>
        {
            ["the admin key"] = network.AdminKey,
            ["the key hash secret"] = network.KeyHashSecret,
            ["the gateway secret"] = network.Environment.GatewaySecret,
            ["the client's API key"] = client.Key,
            ["the operator's API key"] = network.Operator.Key,
            ["a rejected API key"] = wrongKey,
        };
        var rabbitPassword = Uri.UnescapeDataString(new Uri(network.Environment.RabbitMqUri).UserInfo.Split(':', 2).ElementAtOrDefault(1) ?? "");
        var postgresPassword = new NpgsqlConnectionStringBuilder(network.Environment.Infrastructure.PostgresConnectionString).Password ?? "";
        // A password short enough to occur by chance in a log proves nothing either way; the test servers' are long.
        if (rabbitPassword.Length >= 8)
            secrets["the RabbitMQ password"] = rabbitPassword;
        if (postgresPassword.Length >= 8)
            secrets["the Postgres password"] = postgresPassword;

        var logs = network.Services.Select(s => (s.Service, s.LogPath)).ToList();
        Assert.Contains(logs, l => l.Service == "gateway");
        Assert.Contains(logs, l => l.Service == "worker");
        var leaks = new List<string>();
        foreach (var (service, path) in logs)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var text = await new StreamReader(stream).ReadToEndAsync();
            Assert.False(string.IsNullOrEmpty(text), $"{service} wrote no log to {path}");
            leaks.AddRange(secrets.Where(s => text.Contains(s.Value, StringComparison.Ordinal)).Select(s => $"{service} ({path}) logs {s.Key}"));
        }

        Assert.Empty(leaks);
    }

    /// <summary>
    /// A node is a stranger's machine: the running worker holds a node key and the gateway's URL, and neither its
    /// operator's key nor any of the network's credentials, even when the process that started it (a test run under
    /// ./platform test, an operator's shell) holds them. It got its broker login by enrolling with the node key.
    /// </summary>
    [Fact]
    public async Task A_running_node_holds_no_operator_key_service_credential_or_platform_secret_in_its_environment()
    {
        var worker = network.Worker!;
        var environ = (await File.ReadAllTextAsync($"/proc/{worker.ProcessId}/environ")).Split('\0', StringSplitOptions.RemoveEmptyEntries);

        Assert.Contains(environ, e => e.StartsWith("Worker__NodeKey=pk_", StringComparison.Ordinal));
        Assert.False(environ.Any(e => e.Contains(network.Operator.Key, StringComparison.Ordinal)), "the worker's environment holds its operator's key");
        Assert.Contains($"Worker__GatewayUrl={network.Gateway.BaseUrl}", environ);
        var rabbitPassword = Uri.UnescapeDataString(new Uri(network.Environment.RabbitMqUri).UserInfo.Split(':', 2)[1]);
        var postgresPassword = new NpgsqlConnectionStringBuilder(network.Environment.Infrastructure.PostgresConnectionString).Password!;
        foreach (var (what, secret) in new[] { ("the admin key", network.AdminKey), ("the key-hash secret", network.KeyHashSecret),
            ("the services' RabbitMQ password", rabbitPassword), ("the Postgres password", postgresPassword) })
            Assert.False(environ.Any(e => e.Contains(secret, StringComparison.Ordinal)), $"the worker's environment holds {what}");
        Assert.DoesNotContain(environ, e => e.StartsWith("ConnectionStrings__", StringComparison.Ordinal) || e.StartsWith("Platform__", StringComparison.Ordinal));
    }
}
