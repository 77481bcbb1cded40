using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Hosting.Http;
using Platform.Hosting.Messaging;

namespace Platform.Scheduler.Nodes;

/// <summary>
/// <c>POST /v1/nodes</c> (through the gateway, operators only): registers a node's identity key under the
/// operator whose API key made the call and gives the node its own broker login. A worker id keeps its key and
/// its operator for good; the same node enrolling again (same id, key and operator) gets a new broker password.
/// </summary>
public static class NodeEnrollmentApi
{
    /// <summary>Set by the gateway from the authenticated key, with its proof (<see cref="GatewayProof"/>).</summary>
    public const string AccountHeader = GatewayProof.AccountHeader;

    public static IServiceCollection AddNodes(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<NodeBrokerOptions>().BindConfiguration(NodeBrokerOptions.SectionName);
        var broker = RabbitMqAddress.Parse(configuration.GetConnectionString("RabbitMq") ?? "");
        services.AddSingleton(broker);
        services.AddHttpClient<NodeBroker>((sp, http) => NodeBroker.Configure(http, broker, sp.GetRequiredService<IOptions<NodeBrokerOptions>>().Value));
        services.AddHttpClient(Workers.DeadLetterCount.HttpClientName, (sp, http) => NodeBroker.Configure(http, broker, sp.GetRequiredService<IOptions<NodeBrokerOptions>>().Value));
        services.AddSingleton<Workers.DeadLetterCount>();
        return services;
    }

    public static RouteGroupBuilder MapNodes(this IEndpointRouteBuilder app)
    {
        // Only the gateway may say who the operator is: a direct call, or a forged header, is a 401 before anything runs.
        var group = app.MapGroup("/v1/nodes").WithTags("Nodes").RequireGatewayProof();
        group.MapPost("/", Enroll);
        return group;
    }

    /// <summary>The operator making the call, as the gateway proved it (RequireGatewayProof on the group).</summary>
    internal static AccountId? OperatorOf(HttpContext http) =>
        AccountId.TryParse(http.GatewayAccount(), null, out var account) ? account : null;

    private sealed record Existing(string WorkerId, string OperatorAccountId, string PublicKey);

    internal static async Task<Results<Created<NodeEnrollmentResponse>, Ok<NodeEnrollmentResponse>, ProblemHttpResult, ValidationProblem>> Enroll(
        HttpContext http, NpgsqlDataSource db, NodeBroker broker, RabbitMqAddress address, IOptions<NodeBrokerOptions> options,
        IOptions<RabbitMqOptions> queues, TimeProvider clock,
        ILogger<NodeBroker> logger, CancellationToken ct)
    {
        if (OperatorOf(http) is not { } @operator)
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthenticated", "No operator", "enroll a node through the gateway with the operator's API key");
        var (request, problem) = await JsonBody.ReadAsync<NodeEnrollmentRequest>(http, ct);
        if (problem is not null)
            return problem;

        var errors = new Dictionary<string, string[]>();
        // A node's broker names are its id with a suffix after '-' or '_' (worker-<id>-control): an id with '-'
        // could name another node's queue, so enrolled ids are the form nodes generate, wrk_ and base32.
        if (!WorkerId.TryParse(request!.WorkerId, null, out var worker) || worker.Value.Contains('-', StringComparison.Ordinal))
            errors["workerId"] = ["a worker id: wrk_ followed by lower-case letters and digits"];
        using var key = request.PublicKey is null ? null : ResultSignature.ImportPublicKey(request.PublicKey);
        if (key is null)
            errors["publicKey"] = ["a P-256 public key, base64 SubjectPublicKeyInfo"];
        if (string.IsNullOrEmpty(request.Signature))
            errors["signature"] = ["the node key's signature over the enrollment payload, base64 DER"];
        if (errors.Count > 0)
            return Problems.Validation(errors, "the enrollment request is not valid");
        if (!WorkerMessageSignature.Verify(request.PublicKey, request.Signature, NodeEnrollmentSignature.Payload(worker.Value, request.PublicKey!)))
            return Problems.Create(StatusCodes.Status422UnprocessableEntity, "node-signature-invalid", "Signature does not verify",
                "sign the enrollment payload (platform-node-enrollment-v1, worker, key) with the key being registered");

        // One spelling per key, so the uniqueness of keys cannot be dodged by re-encoding one.
        var publicKey = ResultSignature.ExportPublicKey(key!);
        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var created = await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into node_registrations (worker_id, operator_account_id, public_key, broker_user, registered_at, enrolled_at)
            values (@Worker, @Operator, @PublicKey, @User, @Now, @Now) on conflict do nothing
            """, new { Worker = worker.Value, Operator = @operator.Value, PublicKey = publicKey, User = NodeNames.User(worker), Now = now }, tx, cancellationToken: ct)) == 1;
        if (!created)
        {
            var existing = (await connection.QueryAsync<Existing>(new CommandDefinition(
                """
                select worker_id as WorkerId, operator_account_id as OperatorAccountId, public_key as PublicKey
                from node_registrations where worker_id = @Worker or public_key = @PublicKey for update
                """, new { Worker = worker.Value, PublicKey = publicKey }, tx, cancellationToken: ct))).ToList();
            if (existing.Any(e => e.WorkerId != worker.Value || e.PublicKey != publicKey || e.OperatorAccountId != @operator.Value))
            {
                logger.LogWarning("Enrollment of worker {WorkerId} by {Operator} refused: the id or the key is registered otherwise", worker, @operator);
                return Problems.Create(StatusCodes.Status409Conflict, "node-registered-otherwise", "Registered otherwise",
                    "this worker id is registered with another key or operator, or this key to another worker id: a node keeps its id, key and operator");
            }
            await connection.ExecuteAsync(new CommandDefinition(
                "update node_registrations set enrolled_at = @Now where worker_id = @Worker", new { Worker = worker.Value, Now = now }, tx, cancellationToken: ct));
        }

        string password;
        try
        {
            // Inside the transaction: a registration whose broker login could not be made is not kept.
            password = await broker.ProvisionAsync(worker, queues.Value.QuorumQueues, ct);
        }
        catch (Exception ex) when (ex is NodeBrokerException or HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            logger.LogError(ex, "Enrollment of worker {WorkerId}: the broker's management API failed", worker);
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "broker-unavailable", "Broker unavailable",
                "the node's broker login could not be made; try again");
        }
        await tx.CommitAsync(ct);
        logger.LogInformation("Worker {WorkerId} {Action} by operator {Operator}", worker, created ? "registered" : "enrolled again", @operator);

        var o = options.Value;
        // Nodes reach a cluster by every node's address (unless told another one), and declare their queues as the
        // services declare theirs: the scheduler sends into a node's queue and would be refused by a queue of the other kind.
        var host = o.NodeHost ?? address.Host;
        var port = o.NodePort ?? address.Port;
        IReadOnlyList<string> nodes = o.NodeHost is null && o.NodePort is null ? address.Nodes : [$"{host}:{port}"];
        var response = new NodeEnrollmentResponse(worker.Value, @operator.Value, publicKey, new NodeBrokerLogin(
            host, port, address.VirtualHost, NodeNames.User(worker), password,
            NodeNames.Exchange(worker), NodeNames.AssignmentQueue(worker), NodeNames.ControlQueue(worker), nodes, queues.Value.QuorumQueues));
        return created ? TypedResults.Created($"/v1/nodes/{worker.Value}", response) : TypedResults.Ok(response);
    }
}
