using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Platform.Contracts;
using Platform.Hosting.Messaging;

namespace Platform.Scheduler.Nodes;

/// <summary>
/// Where nodes find the broker and how the scheduler manages their logins. Same section as the shared
/// <see cref="RabbitMqOptions"/>; the scheduler alone reads these keys.
/// </summary>
public sealed class NodeBrokerOptions
{
    public const string SectionName = "RabbitMq";

    /// <summary>
    /// The RabbitMQ management HTTP API (RabbitMq__ManagementUrl), used with the services' own broker credentials
    /// (ConnectionStrings:RabbitMq, an administrator) to create node users. Default: http://&lt;amqp host&gt;:15672/.
    /// </summary>
    public Uri? ManagementUrl { get; set; }

    /// <summary>The broker host nodes connect to (RabbitMq__NodeHost); default the host of ConnectionStrings:RabbitMq.</summary>
    public string? NodeHost { get; set; }

    /// <summary>The AMQP port nodes connect to (RabbitMq__NodePort); default the port of ConnectionStrings:RabbitMq.</summary>
    public int? NodePort { get; set; }
}

/// <summary>The broker names a node owns, all derived from its worker id.</summary>
public static class NodeNames
{
    /// <summary>The scheduler's one receive endpoint for node-to-network messages; every node's exchange is bound into it.</summary>
    public const string Intake = "scheduler-node-intake";

    public static string User(WorkerId worker) => $"node-{worker.Value}";

    public static string Exchange(WorkerId worker) => $"node-{worker.Value}";

    public static string AssignmentQueue(WorkerId worker) => $"worker-{worker.Value}";

    public static string ControlQueue(WorkerId worker) => $"worker-{worker.Value}-control";

    /// <summary>
    /// Where the scheduler sends a node's work: the exchange bound to its assignment queue (both made at enrollment), not
    /// the queue itself, whose declaration by a sender would have to match the queue's kind (classic or quorum).
    /// </summary>
    public static string AssignmentAddress(WorkerId worker) => $"exchange:{AssignmentQueue(worker)}";

    /// <summary>The same for the node's control queue (cancels).</summary>
    public static string ControlAddress(WorkerId worker) => $"exchange:{ControlQueue(worker)}";

    /// <summary>
    /// The worker id of a node exchange's name (<c>node-wrk_...</c>), or null for any other exchange. Node ids have
    /// no '-' (see <see cref="NodeEnrollmentApi"/>), so <c>node-&lt;id&gt;</c> names exactly one node.
    /// </summary>
    public static string? WorkerOfExchange(string? exchange) =>
        exchange is not null && exchange.StartsWith("node-", StringComparison.Ordinal) ? exchange["node-".Length..] : null;

    /// <summary>
    /// Names the node may declare, publish to and consume from: <c>worker-&lt;id&gt;</c> and <c>node-&lt;id&gt;</c>,
    /// alone or followed by '-' or '_' and anything (its control queue, its bus endpoint <c>node-&lt;id&gt;-bus</c>,
    /// MassTransit's <c>_error</c> and <c>_skipped</c> queues). An id has no '-' or '_' after its <c>wrk_</c>
    /// prefix, so no other node's names match.
    /// </summary>
    public static string OwnNamesPattern(WorkerId worker) => $"^(worker|node)-{Regex.Escape(worker.Value)}([-_].*)?$";
}

/// <summary>
/// The RabbitMQ management HTTP API, the few calls enrollment makes: a user per node with a fresh password,
/// permissions on the services' vhost for the node's own names only, and the node's exchange bound into the
/// scheduler's intake. Every call is idempotent (PUT, or a binding that exists already), so enrolling again repeats them.
/// </summary>
public sealed class NodeBroker(HttpClient http, RabbitMqAddress broker)
{
    public string VirtualHost => broker.VirtualHost;

    public static void Configure(HttpClient http, RabbitMqAddress broker, NodeBrokerOptions options)
    {
        var url = options.ManagementUrl ?? new UriBuilder("http", broker.Host, 15672).Uri;
        http.BaseAddress = url.AbsoluteUri.EndsWith('/') ? url : new Uri(url.AbsoluteUri + "/");
        http.Timeout = TimeSpan.FromSeconds(15);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{broker.Username}:{broker.Password}")));
    }

    /// <summary>
    /// Creates or updates the node's user with a new random password and returns it, and makes the node's queues (of
    /// the kind the services use, <paramref name="quorumQueues"/>) so work sent before the node first connects waits for it.
    /// </summary>
    public async Task<string> ProvisionAsync(WorkerId worker, bool quorumQueues, CancellationToken ct)
    {
        var password = Base64Url(RandomNumberGenerator.GetBytes(32));
        var user = NodeNames.User(worker);
        var vhost = Uri.EscapeDataString(broker.VirtualHost);
        // No tags: the node may not use the management API or see anything but its own resources.
        await SendAsync(HttpMethod.Put, $"api/users/{Uri.EscapeDataString(user)}", new { password, tags = "" }, ct);
        var own = NodeNames.OwnNamesPattern(worker);
        await SendAsync(HttpMethod.Put, $"api/permissions/{vhost}/{Uri.EscapeDataString(user)}", new { configure = own, write = own, read = own }, ct);
        // The intake's exchange is the scheduler bus's, declared the same way (fanout, durable) in case enrollment
        // comes before the bus's first start; the node's exchange is bound into it by the services' user, as the
        // node may not write to the intake itself.
        await SendAsync(HttpMethod.Put, $"api/exchanges/{vhost}/{NodeNames.Intake}", new { type = "fanout", durable = true, auto_delete = false }, ct);
        var exchange = Uri.EscapeDataString(NodeNames.Exchange(worker));
        await SendAsync(HttpMethod.Put, $"api/exchanges/{vhost}/{exchange}", new { type = "fanout", durable = true, auto_delete = false }, ct);
        await SendAsync(HttpMethod.Post, $"api/bindings/{vhost}/e/{exchange}/e/{NodeNames.Intake}", new { routing_key = "" }, ct);
        // Each queue behind an exchange of its name, as MassTransit lays out a receive endpoint (the node declares the same
        // when it starts, which matches).
        foreach (var queue in new[] { NodeNames.AssignmentQueue(worker), NodeNames.ControlQueue(worker) })
        {
            var name = Uri.EscapeDataString(queue);
            await SendAsync(HttpMethod.Put, $"api/exchanges/{vhost}/{name}", new { type = "fanout", durable = true, auto_delete = false }, ct);
            await SendAsync(HttpMethod.Put, $"api/queues/{vhost}/{name}", new
            {
                durable = true,
                auto_delete = false,
                arguments = quorumQueues ? new Dictionary<string, string> { ["x-queue-type"] = "quorum" } : [],
            }, ct);
            await SendAsync(HttpMethod.Post, $"api/bindings/{vhost}/e/{name}/q/{name}", new { routing_key = "" }, ct);
        }
        return password;
    }

    private async Task SendAsync(HttpMethod method, string path, object body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
            throw new NodeBrokerException($"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public sealed class NodeBrokerException(string message) : Exception(message);
