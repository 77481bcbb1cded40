using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Platform.Worker.Node;
using Xunit.Abstractions;

namespace Platform.Worker.Tests.Node;

/// <summary>
/// Blob reads and pins through the gateway outlast a storage or gateway restart: transient answers are retried within
/// the window, anything else is answered at once.
/// </summary>
public sealed class GatewayClientTests(ITestOutputHelper output)
{
    private static readonly byte[] Bytes = [1, 2, 3, 4];
    private static readonly Cid BytesCid = Cid.Compute(Bytes);
    private static readonly NpyArray Output = NpyArray.FromFloat32([1f, 2f, 3f, 4f], 4);
    private static readonly Cid OutputCid = Cid.Compute(Npy.ToBytes(Output));

    private static GatewayClient Client(Answers answers, TimeSpan window) => new(
        new HttpClient(answers) { BaseAddress = new Uri("http://gateway.test/") },
        Options.Create(new WorkerOptions { NodeKey = "k", BlobRetryWindow = window }),
        NullLogger<GatewayClient>.Instance);

    [Fact]
    public async Task A_pin_answered_503_then_refused_connections_is_sent_again_whole_until_storage_is_back()
    {
        var answers = new Answers(HttpStatusCode.ServiceUnavailable, null, HttpStatusCode.BadGateway, HttpStatusCode.Created);

        var cid = await Client(answers, TimeSpan.FromMinutes(1)).PutBlobAsync(Bytes, CancellationToken.None);

        Assert.Equal(BytesCid, cid);
        Assert.Equal(4, answers.Requests.Count);
        // Every try carried the whole body: a request message (and its content) is made afresh each time.
        Assert.All(answers.Requests, body => Assert.Equal(Bytes, body));
    }

    [Fact]
    public async Task A_read_answered_504_is_read_again()
    {
        var answers = new Answers(HttpStatusCode.GatewayTimeout, HttpStatusCode.OK);

        using var response = await Client(answers, TimeSpan.FromMinutes(1)).OpenBlobAsync(BytesCid, CancellationToken.None);

        Assert.Equal(Bytes, await response!.Content.ReadAsByteArrayAsync());
        Assert.Equal(2, answers.Requests.Count);
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.Forbidden)]
    [InlineData(HttpStatusCode.InternalServerError)]
    public async Task An_answer_that_retrying_cannot_change_is_not_retried(HttpStatusCode status)
    {
        var answers = new Answers(status, HttpStatusCode.Created);

        await Assert.ThrowsAsync<HttpRequestException>(() => Client(answers, TimeSpan.FromMinutes(1)).PutBlobAsync(Bytes, CancellationToken.None));

        Assert.Single(answers.Requests);
    }

    [Fact]
    public async Task Once_the_window_is_spent_the_last_answer_stands()
    {
        var answers = new Answers(Enumerable.Repeat<HttpStatusCode?>(HttpStatusCode.ServiceUnavailable, 100).ToArray());

        var failed = await Assert.ThrowsAsync<HttpRequestException>(() => Client(answers, TimeSpan.FromSeconds(5)).PutBlobAsync(Bytes, CancellationToken.None));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        // Waits of 0.25, 0.5, 1 and 2 s fit in the window, a fifth of 4 s does not: five tries (fewer if the machine is
        // slow), never a hundred.
        Assert.InRange(answers.Requests.Count, 2, 5);
    }

    [Fact]
    public async Task A_refused_connection_after_the_window_is_thrown_as_it_came()
    {
        var answers = new Answers(null, null, null);

        var failed = await Assert.ThrowsAsync<HttpRequestException>(() => Client(answers, TimeSpan.Zero).OpenBlobAsync(BytesCid, CancellationToken.None));

        Assert.Contains("connection refused", failed.Message, StringComparison.Ordinal);
        Assert.Single(answers.Requests);
    }

    [Fact]
    public async Task An_output_this_node_had_pinned_is_not_sent_again_and_a_failed_pin_is_not_remembered()
    {
        var answers = new Answers(HttpStatusCode.BadRequest, HttpStatusCode.Created, HttpStatusCode.Created) { Answer = OutputCid };
        var client = Client(answers, TimeSpan.FromMinutes(1));
        var pinned = new PinnedOutputs();

        await Assert.ThrowsAsync<HttpRequestException>(() => pinned.PinAsync(client, Output, CancellationToken.None));
        Assert.Equal(OutputCid, await pinned.PinAsync(client, Output, CancellationToken.None));
        Assert.Equal(OutputCid, await pinned.PinAsync(client, Output, CancellationToken.None));

        // The refused pin and the first accepted one reached the gateway; the repeat did not.
        Assert.Equal(2, answers.Requests.Count);
    }

    [Fact]
    public async Task An_output_answered_with_another_CID_is_not_remembered()
    {
        // Storage names the bytes [1, 2, 3, 4] in every answer: an output's bytes get an answer that does not match them.
        var answers = new Answers(HttpStatusCode.Created, HttpStatusCode.Created);
        var client = Client(answers, TimeSpan.FromMinutes(1));
        var pinned = new PinnedOutputs();

        Assert.Equal(BytesCid, await pinned.PinAsync(client, Output, CancellationToken.None));
        Assert.Equal(BytesCid, await pinned.PinAsync(client, Output, CancellationToken.None));

        Assert.Equal(2, answers.Requests.Count);
    }

    [Fact]
    public async Task A_large_output_is_streamed_as_its_npy_bytes_with_their_length_every_time()
    {
        // Past 64 KiB an output is neither hashed here nor remembered: it is written into the request as it is sent.
        const int seed = 7;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var values = new float[300_001];
        for (var i = 0; i < values.Length; i++)
            values[i] = random.NextSingle();
        var large = NpyArray.FromFloat32(values, values.Length);
        var expected = Npy.ToBytes(large);
        var answers = new Answers(HttpStatusCode.Created, HttpStatusCode.Created) { Answer = Cid.Compute(expected) };
        var client = Client(answers, TimeSpan.FromMinutes(1));
        var pinned = new PinnedOutputs();

        Assert.Equal(Cid.Compute(expected), await pinned.PinAsync(client, large, CancellationToken.None));
        Assert.Equal(Cid.Compute(expected), await pinned.PinAsync(client, large, CancellationToken.None));

        Assert.Equal(2, answers.Requests.Count);
        Assert.All(answers.Requests, body => Assert.Equal(expected, body));
        Assert.All(answers.Lengths, length => Assert.Equal(expected.Length, length));
    }

    /// <summary>Answers each request with the next status in turn; null refuses the connection.</summary>
    private sealed class Answers(params HttpStatusCode?[] statuses) : HttpMessageHandler
    {
        public List<byte[]> Requests { get; } = [];

        /// <summary>The Content-Length each request declared.</summary>
        public List<long?> Lengths { get; } = [];

        /// <summary>The CID every pin is answered with.</summary>
        public Cid Answer { get; init; } = BytesCid;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Lengths.Add(request.Content?.Headers.ContentLength);
            Requests.Add(request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken));
            var status = statuses[Requests.Count - 1];
            if (status is not { } answer)
                throw new HttpRequestException("connection refused (stand-in)");
            return answer switch
            {
                HttpStatusCode.Created => new HttpResponseMessage(answer) { Content = JsonContent.Create(new { cid = Answer.Value }) },
                HttpStatusCode.OK => new HttpResponseMessage(answer) { Content = new ByteArrayContent(Bytes) },
                _ => new HttpResponseMessage(answer),
            };
        }
    }
}
