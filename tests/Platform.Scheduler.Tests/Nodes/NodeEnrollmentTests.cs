using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Nodes;

/// <summary>One scheduler on the real broker and database for a test class.</summary>
public sealed class SchedulerFixture : IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public InProcessScheduler Scheduler { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-nodes");
        Scheduler = InProcessScheduler.Start(_env);
    }

    public async Task DisposeAsync()
    {
        try
        {
            await Scheduler.DisposeAsync();
        }
        finally
        {
            await _env.DisposeAsync();
        }
    }
}

/// <summary>
/// POST /v1/nodes: a node's key is registered under the operator whose key made the call, once and for good, and
/// the node gets a broker login of its own. (The gateway lets only operators call it: RoleMatrixTests.)
/// </summary>
public sealed class NodeEnrollmentTests(SchedulerFixture fixture) : IClassFixture<SchedulerFixture>
{
    private InProcessScheduler Scheduler => fixture.Scheduler;

    [Fact]
    public async Task A_node_is_registered_under_the_calling_operator_and_enrolling_again_replaces_its_broker_password()
    {
        var @operator = AccountId.New();
        var node = InProcessScheduler.Node.New();

        using var first = await Scheduler.PostEnrollmentAsync(@operator, node.Request());
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var enrolled = (await first.Content.ReadFromJsonAsync<NodeEnrollmentResponse>(PlatformJson.Options))!;
        Assert.Equal(node.WorkerId.Value, enrolled.WorkerId);
        Assert.Equal(@operator.Value, enrolled.OperatorAccountId);
        Assert.Equal(node.PublicKey, enrolled.PublicKey);
        Assert.Equal($"node-{node.WorkerId}", enrolled.Broker.Username);
        Assert.Equal($"node-{node.WorkerId}", enrolled.Broker.Exchange);
        Assert.Equal($"worker-{node.WorkerId}", enrolled.Broker.AssignmentQueue);
        Assert.Equal($"worker-{node.WorkerId}-control", enrolled.Broker.ControlQueue);
        Assert.Equal(@operator.Value, await Scheduler.QueryAsync<string>(
            "select operator_account_id from node_registrations where worker_id = @id", new { id = node.WorkerId.Value }));
        await using (var login = await RogueNode.ConnectAsync(enrolled.Broker))
            Assert.Null(await login.TryDeclareQueueAsync(enrolled.Broker.AssignmentQueue));

        using var again = await Scheduler.PostEnrollmentAsync(@operator, node.Request());
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var reenrolled = (await again.Content.ReadFromJsonAsync<NodeEnrollmentResponse>(PlatformJson.Options))!;
        Assert.NotEqual(enrolled.Broker.Password, reenrolled.Broker.Password);
        await using (await RogueNode.ConnectAsync(reenrolled.Broker))
        {
        }
        await Assert.ThrowsAnyAsync<Exception>(async () => await (await RogueNode.ConnectAsync(enrolled.Broker)).DisposeAsync());
    }

    [Fact]
    public async Task A_request_not_signed_by_the_key_it_registers_is_refused()
    {
        var node = InProcessScheduler.Node.New();
        var other = InProcessScheduler.Node.New();
        var forged = node.Request() with { Signature = WorkerMessageSignature.Sign(other.Key, NodeEnrollmentSignature.Payload(node.WorkerId.Value, node.PublicKey)) };

        using var response = await Scheduler.PostEnrollmentAsync(AccountId.New(), forged);

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:node-signature-invalid");
        Assert.Null(await Scheduler.QueryAsync<string>("select worker_id from node_registrations where worker_id = @id", new { id = node.WorkerId.Value }));
    }

    [Theory]
    [InlineData("workerId")]
    [InlineData("publicKey")]
    [InlineData("signature")]
    [InlineData("dash")]
    public async Task A_malformed_request_is_a_validation_problem(string broken)
    {
        var node = InProcessScheduler.Node.New();
        var request = broken switch
        {
            "workerId" => node.Request() with { WorkerId = "not-a-worker" },
            "publicKey" => node.Request() with { PublicKey = "bm90IGEga2V5" },
            "signature" => node.Request() with { Signature = null },
            // An id with '-' could name another node's queue (worker-<id>-control): not enrolled.
            _ => new InProcessScheduler.Node(WorkerId.From(node.WorkerId.Value + "-control"), node.Key).Request(),
        };

        using var response = await Scheduler.PostEnrollmentAsync(AccountId.New(), request);

        await AssertProblemAsync(response, HttpStatusCode.BadRequest, "urn:platform:problem:validation");
    }

    [Fact]
    public async Task A_worker_id_or_key_registered_otherwise_is_a_conflict()
    {
        var owner = AccountId.New();
        var node = InProcessScheduler.Node.New();
        await Scheduler.EnrollAsync(owner, node);

        // Another operator claims the node (with the node's own key and signature, replayed).
        using (var stolen = await Scheduler.PostEnrollmentAsync(AccountId.New(), node.Request()))
            await AssertProblemAsync(stolen, HttpStatusCode.Conflict, "urn:platform:problem:node-registered-otherwise");
        // The same id with another key, even by its operator.
        var rekeyed = new InProcessScheduler.Node(node.WorkerId, InProcessScheduler.Node.New().Key);
        using (var other = await Scheduler.PostEnrollmentAsync(owner, rekeyed.Request()))
            await AssertProblemAsync(other, HttpStatusCode.Conflict, "urn:platform:problem:node-registered-otherwise");
        // The same key under another id.
        var cloned = new InProcessScheduler.Node(WorkerId.New(), node.Key);
        using (var clone = await Scheduler.PostEnrollmentAsync(owner, cloned.Request()))
            await AssertProblemAsync(clone, HttpStatusCode.Conflict, "urn:platform:problem:node-registered-otherwise");

        Assert.Equal(owner.Value, await Scheduler.QueryAsync<string>(
            "select operator_account_id from node_registrations where worker_id = @id", new { id = node.WorkerId.Value }));
        Assert.Equal(1, await Scheduler.QueryAsync<long>(
            "select count(*) from node_registrations where public_key = @key", new { key = node.PublicKey }));
    }

    [Fact]
    public async Task A_call_without_an_operator_is_refused()
    {
        using var response = await Scheduler.PostEnrollmentAsync(null, InProcessScheduler.Node.New().Request());

        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "urn:platform:problem:gateway-proof-required");
    }

    [Fact]
    public async Task A_direct_call_naming_an_operator_without_the_gateways_proof_registers_nothing()
    {
        // Anyone who reaches the scheduler's port could name a victim operator in the header: without the gateway's
        // proof the node is not registered under it, and gets no broker login.
        var victim = AccountId.New();
        var node = InProcessScheduler.Node.New();
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/nodes") { Content = System.Net.Http.Json.JsonContent.Create(node.Request()) };
        message.Headers.Add(Platform.Hosting.Http.GatewayProof.AccountHeader, victim.Value);
        using var response = await Scheduler.UnsignedHttp.SendAsync(message);

        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "urn:platform:problem:gateway-proof-required");
        Assert.Equal(0, await Scheduler.QueryAsync<long>("select count(*) from node_registrations where worker_id = @id", new { id = node.WorkerId.Value }));
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(type, problem.RootElement.GetProperty("type").GetString());
    }
}
