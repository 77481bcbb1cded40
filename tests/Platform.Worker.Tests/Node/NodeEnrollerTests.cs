using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Worker.Node;

namespace Platform.Worker.Tests.Node;

/// <summary>How a node enrolls through the gateway: what it sends, when it retries and when it gives up.</summary>
public sealed class NodeEnrollerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-enroll-" + Guid.NewGuid().ToString("n"));
    private readonly AccountId _operator = AccountId.New();

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Enrollment_retries_while_the_gateway_is_unreachable_then_proves_the_node_key_and_keeps_the_login()
    {
        var identity = NodeIdentity.LoadOrCreate(_dir);
        NodeEnrollmentRequest? sent = null;
        string? authorization = null;
        var calls = 0;
        using var gateway = Gateway(request =>
        {
            // Down, then up but unhealthy, then answering.
            if (++calls == 1)
                throw new HttpRequestException("Connection refused");
            if (calls == 2)
                return Problem(HttpStatusCode.BadGateway, "upstream down");
            authorization = request.Headers.Authorization?.ToString();
            sent = request.Content!.ReadFromJsonAsync<NodeEnrollmentRequest>().GetAwaiter().GetResult();
            return Json(HttpStatusCode.Created, Answer(identity));
        });

        var enrollment = await NodeEnroller.EnrollAsync(gateway, identity, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(3, calls);
        Assert.Equal("Bearer pk_operator", authorization);
        Assert.Equal(identity.WorkerId.Value, sent!.WorkerId);
        Assert.Equal(identity.PublicKey, sent.PublicKey);
        Assert.True(WorkerMessageSignature.Verify(identity.PublicKey, sent.Signature, NodeEnrollmentSignature.Payload(identity.WorkerId.Value, identity.PublicKey)));
        Assert.Equal(_operator, enrollment.OperatorAccountId);
        Assert.Equal($"node-{identity.WorkerId}", enrollment.Broker.Username);
        Assert.Equal($"node-{identity.WorkerId}-bus", enrollment.BusLogin.BusEndpointQueueName);
        Assert.Equal("exchange:node-" + identity.WorkerId + "?type=fanout&durable=true&autodelete=false", enrollment.ExchangeAddress.ToString());
        // Logged forms of the login never carry its password.
        Assert.DoesNotContain("s3cret", enrollment.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", enrollment.BusLogin.Address.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized, "refused the node key")]
    [InlineData(HttpStatusCode.Forbidden, "refused the node key")]
    [InlineData(HttpStatusCode.Conflict, "empty Worker:DataDirectory")]
    [InlineData(HttpStatusCode.UnprocessableEntity, "422")]
    public async Task A_refusal_ends_enrollment_at_once_with_the_reason(HttpStatusCode status, string reason)
    {
        var identity = NodeIdentity.LoadOrCreate(_dir);
        var calls = 0;
        using var gateway = Gateway(_ =>
        {
            calls++;
            return Problem(status, "the gateway's own words");
        });

        var refused = await Assert.ThrowsAsync<NodeEnrollmentRefusedException>(() => NodeEnroller.EnrollAsync(gateway, identity, NullLogger.Instance, CancellationToken.None));

        Assert.Equal(1, calls);
        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
        Assert.Contains("the gateway's own words", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_answer_about_another_node_is_not_taken()
    {
        var identity = NodeIdentity.LoadOrCreate(_dir);
        var other = NodeIdentity.LoadOrCreate(Path.Combine(_dir, "other"));
        using var gateway = Gateway(_ => Json(HttpStatusCode.OK, Answer(other)));

        await Assert.ThrowsAsync<NodeEnrollmentRefusedException>(() => NodeEnroller.EnrollAsync(gateway, identity, NullLogger.Instance, CancellationToken.None));
    }

    private NodeEnrollmentResponse Answer(NodeIdentity node) => new(node.WorkerId.Value, _operator.Value, node.PublicKey, new NodeBrokerLogin(
        "127.0.0.1", 5672, "v", $"node-{node.WorkerId}", "s3cret", $"node-{node.WorkerId}", $"worker-{node.WorkerId}", $"worker-{node.WorkerId}-control"));

    private static HttpClient Gateway(Func<HttpRequestMessage, HttpResponseMessage> answer) =>
        new(new Answering(answer)) { BaseAddress = new Uri("http://gateway.test/"), DefaultRequestHeaders = { Authorization = new("Bearer", "pk_operator") } };

    private static HttpResponseMessage Json(HttpStatusCode status, object body) => new(status) { Content = JsonContent.Create(body) };

    private static HttpResponseMessage Problem(HttpStatusCode status, string detail) => new(status)
    {
        Content = new StringContent($$"""{"type":"x","title":"t","status":{{(int)status}},"detail":"{{detail}}"}""", Encoding.UTF8, "application/problem+json"),
    };

    private sealed class Answering(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => Task.FromResult(answer(request));
    }
}
