using System.Collections.Concurrent;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Hosting.Messaging;
using Platform.Testing;

namespace Platform.Worker.Tests.Node;

/// <summary>
/// The network's gateway as one node sees it, on a real port: <c>POST /v1/nodes</c>, which makes the node's own
/// RabbitMQ user through the management API with the permissions the network gives a node (its own names, nothing
/// else), and the blob endpoints the node fetches inputs from and pins outputs to. The node is a real worker process.
/// </summary>
public sealed class NodeGateway : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _management;
    private readonly ConcurrentDictionary<string, byte> _users = new();

    private NodeGateway(WebApplication app, Uri baseUrl, HttpClient management)
    {
        _app = app;
        _management = management;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public string NodeKey { get; } = "pk_node_" + Guid.NewGuid().ToString("n");

    public AccountId Operator { get; } = AccountId.New();

    public ConcurrentDictionary<string, byte[]> Blobs { get; } = new();

    /// <summary>The passwords handed out, so a test can look for them where they must not be.</summary>
    public ConcurrentBag<string> Passwords { get; } = [];

    /// <summary>
    /// What a node's login may configure, write and read: its assignment and control queues and names starting
    /// with its exchange's. Stricter than the network needs to be (no <c>_error</c> queues), so the worker is
    /// shown to need nothing more.
    /// </summary>
    public static string NodePermissions(WorkerId worker) => $"^(worker-{worker.Value}(-control)?|node-{worker.Value}(-.*)?)$";

    public static async Task<NodeGateway> StartAsync(TestEnvironment env)
    {
        var broker = RabbitMqAddress.Parse(env.RabbitMqUri);
        var builder = WebApplication.CreateSlimBuilder();
        var url = $"http://127.0.0.1:{FreePort.Next()}";
        builder.WebHost.UseUrls(url);
        var app = builder.Build();
        var management = env.Infrastructure.RabbitMqManagement;
        var gateway = new NodeGateway(app, new Uri(url + "/"), management);

        app.MapPost("/v1/nodes", async (HttpContext http, NodeEnrollmentRequest request) =>
        {
            if (http.Request.Headers.Authorization.ToString() != $"Bearer {gateway.NodeKey}")
                return Results.Problem(statusCode: 401, type: "unauthenticated");
            if (!WorkerId.TryParse(request.WorkerId, null, out var worker)
                || !WorkerMessageSignature.Verify(request.PublicKey, request.Signature, NodeEnrollmentSignature.Payload(worker.Value, request.PublicKey!)))
                return Results.Problem(statusCode: 422, type: "node-signature-invalid");
            var user = $"node-{worker.Value}";
            var password = Guid.NewGuid().ToString("n");
            gateway.Passwords.Add(password);
            gateway._users[user] = 0;
            var vhost = Uri.EscapeDataString(env.Name);
            var own = NodePermissions(worker);
            await PutAsync(management, $"api/users/{user}", new { password, tags = "" });
            await PutAsync(management, $"api/permissions/{vhost}/{user}", new { configure = own, write = own, read = own });
            return Results.Ok(new NodeEnrollmentResponse(worker.Value, gateway.Operator.Value, request.PublicKey!, new NodeBrokerLogin(
                broker.Host, broker.Port, broker.VirtualHost, user, password, $"node-{worker.Value}", $"worker-{worker.Value}", $"worker-{worker.Value}-control")));
        });
        app.MapGet("/v1/blobs/{cid}", (string cid) => gateway.Blobs.TryGetValue(cid, out var bytes) ? Results.Bytes(bytes, "application/octet-stream") : Results.NotFound());
        app.MapPost("/v1/blobs", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            var cid = Cid.Compute(body.ToArray());
            gateway.Blobs[cid.Value] = body.ToArray();
            return Results.Ok(new { cid = cid.Value });
        });
        await app.StartAsync();
        return gateway;
    }

    public Cid Put(byte[] bytes)
    {
        var cid = Cid.Compute(bytes);
        Blobs[cid.Value] = bytes;
        return cid;
    }

    private static async Task PutAsync(HttpClient management, string path, object body)
    {
        using var response = await management.PutAsJsonAsync(path, body);
        response.EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        // Users are the broker's, not the test vhost's: remove the ones made here.
        foreach (var user in _users.Keys)
            using (await _management.DeleteAsync($"api/users/{user}")) { }
    }
}
