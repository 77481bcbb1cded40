using System.Net;
using Platform.Contracts;
using Platform.Hosting.Http;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>
/// Submission reads each input's .npy header from storage once per CID and then from memory; what it could not read
/// (a blob not pinned) it asks again next time. Storage runs as a real process; the requests the gateway sends it are
/// counted on their way out.
/// </summary>
public sealed class TensorHeadersTests(SubmitTestGateway network, ITestOutputHelper output) : IClassFixture<SubmitTestGateway>
{
    private float[] RandomVector(int seed)
    {
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        return [.. Enumerable.Range(0, 16).Select(_ => (float)random.NextDouble())];
    }

    [Fact]
    public async Task Each_input_CID_is_read_from_storage_once_and_then_known()
    {
        using var http = await network.ClientAsync();
        var a = await network.PinVectorAsync(RandomVector(1801));
        var b = await network.PinVectorAsync(RandomVector(1802));
        var before = network.StorageRequests.Count;

        using (var first = await SubmitTestGateway.SubmitAsync(http, a, a))
            Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(1, network.StorageRequests.Count - before); // a and b name the same CID: one read

        using (var second = await SubmitTestGateway.SubmitAsync(http, a, b))
            Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal(2, network.StorageRequests.Count - before); // only b was new

        using (var third = await SubmitTestGateway.SubmitAsync(http, b, a))
            Assert.Equal(HttpStatusCode.Accepted, third.StatusCode);
        Assert.Equal(2, network.StorageRequests.Count - before);
    }

    [Fact]
    public async Task An_input_that_was_not_pinned_is_asked_for_again_and_accepted_once_pinned()
    {
        using var http = await network.ClientAsync();
        var bytes = SubmitTestGateway.Vector(RandomVector(1803));
        var cid = Cid.Compute(bytes).Value;

        using (var refused = await SubmitTestGateway.SubmitAsync(http, cid, cid))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            Assert.Equal(Problems.Type("input-not-found"), await SubmitTestGateway.ProblemTypeAsync(refused));
        }
        Assert.Equal(cid, await network.PinAsync(bytes));

        using var accepted = await SubmitTestGateway.SubmitAsync(http, cid, cid);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
    }

    [Fact]
    public async Task A_blob_that_is_not_a_tensor_is_refused_for_each_submit_without_asking_storage_again()
    {
        using var http = await network.ClientAsync();
        var text = await network.PinAsync(System.Text.Encoding.UTF8.GetBytes("not a tensor"));
        var a = await network.PinVectorAsync(RandomVector(1804));
        var before = network.StorageRequests.Count;

        for (var i = 0; i < 2; i++)
        {
            using var refused = await SubmitTestGateway.SubmitAsync(http, a, text);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            Assert.Equal(Problems.Type("input-invalid"), await SubmitTestGateway.ProblemTypeAsync(refused));
            Assert.Contains("input 'b'", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(2, network.StorageRequests.Count - before);
    }
}
