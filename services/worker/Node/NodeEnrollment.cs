using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Hosting;
using Platform.Hosting.Messaging;

namespace Platform.Worker.Node;

/// <summary>
/// What the network gave this node when it enrolled: the operator it works for (the account of the node key the
/// operator made, never what the node says) and a broker login that may touch only the node's own queues and exchange. The password lives
/// in memory only: every start enrolls again and gets a new one.
/// </summary>
public sealed class NodeEnrollment(AccountId operatorAccountId, NodeBrokerLogin broker)
{
    public AccountId OperatorAccountId { get; } = operatorAccountId;

    public NodeBrokerLogin Broker { get; } = broker;

    /// <summary>The bus's login, with MassTransit's own queue named after the node so the login may declare it.</summary>
    public BrokerLogin BusLogin =>
        new(new RabbitMqAddress(Broker.Host, (ushort)Broker.Port, Broker.VirtualHost, Broker.Username, Broker.Password)
        {
            Nodes = Broker.Nodes is { Count: > 0 } nodes ? nodes : [$"{Broker.Host}:{Broker.Port}"],
        }, $"{Broker.Exchange}-bus", Broker.QuorumQueues);

    /// <summary>The node's exchange, declared as the network declares it (fanout, durable), where every message of the node goes.</summary>
    public Uri ExchangeAddress => new($"exchange:{Broker.Exchange}?type=fanout&durable=true&autodelete=false");

    public override string ToString() => $"{Broker.Username} on {string.Join(',', BusLogin.Address.Nodes)}/{Broker.VirtualHost} for {OperatorAccountId}";
}

/// <summary>An enrollment the gateway refused for good (bad key, an id registered to another key): retrying cannot help.</summary>
public sealed class NodeEnrollmentRefusedException(string message) : Exception(message);

/// <summary>
/// <c>POST /v1/nodes</c> with the node key its operator made: registers this node's public key under the operator, proves it
/// holds the private key, and gets the node's broker login. Retries while the gateway is unreachable or busy.
/// </summary>
public static class NodeEnroller
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(5);

    public static async Task<NodeEnrollment> EnrollAsync(HttpClient gateway, NodeIdentity identity, ILogger logger, CancellationToken ct)
    {
        var request = new NodeEnrollmentRequest(identity.WorkerId.Value, identity.PublicKey, identity.SignEnrollment());
        var delay = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            string? retryReason;
            try
            {
                using var response = await gateway.PostAsJsonAsync(new Uri("v1/nodes", UriKind.Relative), request, PlatformJson.Options, ct);
                if (response.IsSuccessStatusCode)
                    return Check(identity, await response.Content.ReadFromJsonAsync<NodeEnrollmentResponse>(PlatformJson.Options, ct));
                var problem = await ProblemAsync(response, ct);
                retryReason = response.StatusCode switch
                {
                    HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => throw new NodeEnrollmentRefusedException(
                        $"the gateway refused the node key (Worker:NodeKey): {problem}"),
                    HttpStatusCode.Conflict => throw new NodeEnrollmentRefusedException(
                        $"the network refused worker {identity.WorkerId}: {problem}. A worker id keeps the key and the operator it was first enrolled with; " +
                        "to join under another operator, start with an empty Worker:DataDirectory (a new id and key); a node key enrolls only the worker it first enrolled"),
                    HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests => $"{(int)response.StatusCode} {problem}",
                    >= HttpStatusCode.InternalServerError => $"{(int)response.StatusCode} {problem}",
                    _ => throw new NodeEnrollmentRefusedException($"the gateway answered POST /v1/nodes with {(int)response.StatusCode}: {problem}"),
                };
                if (response.Headers.RetryAfter?.Delta is { } after && after > delay)
                    delay = after < MaxDelay * 6 ? after : MaxDelay * 6;
            }
            catch (HttpRequestException ex)
            {
                retryReason = ex.Message;
            }
            catch (TaskCanceledException ex) when (!ct.IsCancellationRequested)
            {
                retryReason = $"no answer in time ({ex.Message})";
            }
            // The gateway may start after the worker (compose, ./platform up): keep asking.
            logger.LogWarning("Cannot enroll through the gateway yet ({Reason}); retrying in {Delay:0.#} s", retryReason, delay.TotalSeconds);
            await Task.Delay(delay, ct);
            delay = delay * 2 < MaxDelay ? delay * 2 : MaxDelay;
        }
    }

    /// <summary>The answer must be about this node and name a usable login; anything else is a gateway this node cannot work with.</summary>
    private static NodeEnrollment Check(NodeIdentity identity, NodeEnrollmentResponse? response)
    {
        if (response?.Broker is not { } broker || response.WorkerId != identity.WorkerId.Value || response.PublicKey != identity.PublicKey
            || !AccountId.TryParse(response.OperatorAccountId, null, out var operatorId))
            throw new NodeEnrollmentRefusedException("the gateway's enrollment answer is not about this node's id and key");
        if (string.IsNullOrEmpty(broker.Host) || broker.Port is < 1 or > 65535 || string.IsNullOrEmpty(broker.Username) || string.IsNullOrEmpty(broker.Password)
            || string.IsNullOrEmpty(broker.Exchange) || string.IsNullOrEmpty(broker.AssignmentQueue) || string.IsNullOrEmpty(broker.ControlQueue))
            throw new NodeEnrollmentRefusedException("the gateway's enrollment answer has no complete broker login");
        return new NodeEnrollment(operatorId, broker with { VirtualHost = string.IsNullOrEmpty(broker.VirtualHost) ? "/" : broker.VirtualHost });
    }

    private static async Task<string> ProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStringAsync(ct);
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var text = root.TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.String ? detail.GetString()
                : root.TryGetProperty("title", out var title) && title.ValueKind == JsonValueKind.String ? title.GetString() : null;
            if (!string.IsNullOrWhiteSpace(text))
                return Shorten(text);
        }
        catch (JsonException)
        {
            // Not a problem body: say what the status says.
        }
        return Shorten(string.IsNullOrWhiteSpace(body) ? response.ReasonPhrase ?? "no reason given" : body);
    }

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "...";
}

/// <summary>The node as it starts: its identity and what its enrollment gave it.</summary>
public sealed record EnrolledNode(NodeIdentity Identity, NodeEnrollment Enrollment);

public static class NodeRegistration
{
    /// <summary>
    /// Loads (or creates) the node's identity and enrolls it through the gateway, before the bus is configured: the
    /// enrollment gives the bus its login and names the node's queues. Null when the network refused the node; the
    /// reason is logged.
    /// </summary>
    public static async Task<EnrolledNode?> AddNodeAsync(this WebApplicationBuilder builder, CancellationToken ct = default)
    {
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var options = builder.Configuration.GetSection(WorkerOptions.SectionName).Get<WorkerOptions>() ?? new WorkerOptions();

        using var logging = LoggerFactory.Create(l => l.AddConfiguration(builder.Configuration.GetSection("Logging")).AddPlatformLogging());
        var logger = logging.CreateLogger(typeof(NodeEnrollment).FullName!);
        // The options are checked here already (and again at host start): the enrollment needs them.
        List<ValidationResult> errors = [];
        if (!Validator.TryValidateObject(options, new ValidationContext(options), errors, validateAllProperties: true))
        {
            logger.LogCritical("Worker settings are invalid: {Errors}", string.Join("; ", errors.Select(e => e.ErrorMessage)));
            return null;
        }

        var identity = NodeIdentity.LoadOrCreate(options.DataDirectory, Math.Clamp(options.Slots, 1, 256));
        NodeEnrollment enrollment;
        using (var gateway = Gateway(options, TimeSpan.FromSeconds(30)))
        {
            try
            {
                enrollment = await NodeEnroller.EnrollAsync(gateway, identity, logger, ct);
            }
            catch (NodeEnrollmentRefusedException ex)
            {
                logger.LogCritical("Worker {WorkerId} cannot join the network: {Reason}", identity.WorkerId, ex.Message);
                return null;
            }
        }
        logger.LogInformation("Worker {WorkerId} enrolled for operator {Operator}; broker login {Login}", identity.WorkerId, enrollment.OperatorAccountId, enrollment.Broker.Username);

        builder.Services.AddSingleton(identity);
        builder.Services.AddSingleton(enrollment);
        builder.Services.AddSingleton<NodeChannel>();
        builder.Services.AddHttpClient<GatewayClient>((sp, http) =>
        {
            var o = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<WorkerOptions>>().Value;
            http.BaseAddress = o.GatewayUrl;
            http.DefaultRequestHeaders.Authorization = new("Bearer", o.NodeKey);
            http.Timeout = TimeSpan.FromMinutes(10);
        });
        builder.Services.AddSingleton<NodeStatus>();
        builder.Services.AddHealthChecks().AddCheck<NodeStatus>("registration", tags: ["ready"]);
        return new EnrolledNode(identity, enrollment);
    }

    private static HttpClient Gateway(WorkerOptions options, TimeSpan timeout)
    {
        var http = new HttpClient { BaseAddress = options.GatewayUrl, Timeout = timeout };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.NodeKey);
        return http;
    }
}
