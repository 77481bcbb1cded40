using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// A node key on the running network (gateway, storage, scheduler, rewards as processes): it fetches and pins blobs
/// for its operator, whose account the pin is charged to, and enrolls a node under that operator, and does nothing
/// else; once revoked it gets 401. (Every other end-to-end test's worker runs on a node key too.)
/// </summary>
public sealed class NodeKeyTests(BareNetwork network, ITestOutputHelper output) : IClassFixture<BareNetwork>
{
    private sealed record Node(WorkerId WorkerId, ECDsa Key)
    {
        public string PublicKey => ResultSignature.ExportPublicKey(Key);

        public static Node New() => new(WorkerId.New(), ECDsa.Create(ECCurve.NamedCurves.nistP256));

        public NodeEnrollmentRequest Request() =>
            new(WorkerId.Value, PublicKey, WorkerMessageSignature.Sign(Key, NodeEnrollmentSignature.Payload(WorkerId.Value, PublicKey)));
    }

    [Fact]
    public async Task A_node_key_fetches_pins_and_enrolls_for_its_operator_is_refused_everything_else_and_gets_401_once_revoked()
    {
        var @operator = await network.CreateOperatorAsync();
        using var asOperator = network.Client(@operator.Key);
        var nodeKey = await network.CreateNodeKeyAsync(@operator.Key);
        using var asNode = network.Client(nodeKey);

        // Pin and fetch.
        var bytes = SeededData.Bytes(50_000, seed: 1515, output);
        using var upload = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } };
        using (var pinned = await asNode.PostAsync(new Uri("/v1/blobs", UriKind.Relative), upload))
            Assert.True(pinned.StatusCode == HttpStatusCode.Created, $"pin: {(int)pinned.StatusCode} {await pinned.Content.ReadAsStringAsync()}");
        var cid = Cid.Compute(bytes);
        Assert.Equal(bytes, await asNode.GetByteArrayAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative)));
        using (var head = await asNode.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v1/blobs/{cid}")))
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        // The pin is the operator's (pins of operators are free; a client's pay a fee).
        using (var status = await asOperator.GetAsync(new Uri($"/v1/blobs/{cid}/pin", UriKind.Relative)))
        {
            var text = await status.Content.ReadAsStringAsync();
            Assert.True(status.StatusCode == HttpStatusCode.OK, $"pin status: {(int)status.StatusCode} {text}");
            Assert.Equal(@operator.AccountId, JsonDocument.Parse(text).RootElement.GetProperty("owner").GetString());
        }

        // Enrollment: the node is registered under the node key's operator.
        var node = Node.New();
        using (var enrolled = await asNode.PostAsJsonAsync("/v1/nodes", node.Request()))
        {
            var text = await enrolled.Content.ReadAsStringAsync();
            Assert.True(enrolled.StatusCode == HttpStatusCode.Created, $"enrollment: {(int)enrolled.StatusCode} {text}");
            Assert.Equal(@operator.AccountId, JsonDocument.Parse(text).RootElement.GetProperty("operatorAccountId").GetString());
        }
        using (var again = await asNode.PostAsJsonAsync("/v1/nodes", node.Request()))
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        // A stolen node key cannot enroll another node under the operator.
        using (var another = await asNode.PostAsJsonAsync("/v1/nodes", Node.New().Request()))
        {
            Assert.Equal(HttpStatusCode.Conflict, another.StatusCode);
            Assert.Contains("urn:platform:problem:node-key-bound", await another.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Nothing of the operator's own: account, ledger, earnings, stake, unstake, jobs, datasets, more node keys.
        foreach (var (method, path) in new[]
        {
            ("GET", "/v1/account"), ("GET", "/v1/account/ledger"), ("GET", "/v1/account/earnings"), ("POST", "/v1/account/stake"),
            ("POST", "/v1/account/unstake"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("POST", "/v1/datasets"),
            ("POST", "/v1/account/node-keys"), ("GET", "/v1/account/node-keys"), ("DELETE", $"/v1/blobs/{cid}"),
        })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (method == "POST")
                request.Content = JsonContent.Create(new { amount = 1 });
            using var refused = await asNode.SendAsync(request);
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"{method} {path} with a node key: {(int)refused.StatusCode}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }

        // Revoked by its operator: 401 on what it could do.
        var id = JsonDocument.Parse(await asOperator.GetStringAsync(new Uri("/v1/account/node-keys", UriKind.Relative))).RootElement[0].GetProperty("id").GetString();
        using (var revoked = await asOperator.DeleteAsync(new Uri($"/v1/account/node-keys/{id}", UriKind.Relative)))
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        using (var get = await asNode.GetAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative)))
            Assert.Equal(HttpStatusCode.Unauthorized, get.StatusCode);
        using (var enroll = await asNode.PostAsJsonAsync("/v1/nodes", node.Request()))
            Assert.Equal(HttpStatusCode.Unauthorized, enroll.StatusCode);
        using var again2 = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } };
        using (var pin = await asNode.PostAsync(new Uri("/v1/blobs", UriKind.Relative), again2))
            Assert.Equal(HttpStatusCode.Unauthorized, pin.StatusCode);
    }
}
