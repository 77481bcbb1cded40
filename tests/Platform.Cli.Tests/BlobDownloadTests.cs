using System.Net;
using Platform.Client;
using Platform.Contracts;
using Platform.Contracts.Api;

namespace Platform.Cli.Tests;

public sealed class BlobDownloadTests
{
    private static readonly byte[] Blob = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
    private static readonly string BlobCid = Cid.Compute(Blob).Value;

    [Fact]
    public async Task Intact_download_is_written_and_counted()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Bytes(Blob));
        using var client = gateway.Client();
        using var destination = new MemoryStream();
        long reported = 0;

        var size = await client.GetBlobAsync(BlobCid, destination, new Inline(n => reported = n));

        Assert.Equal(Blob.Length, size);
        Assert.Equal(Blob, destination.ToArray());
        Assert.Equal(Blob.Length, reported);
        Assert.Equal($"http://gateway.test/v1/blobs/{BlobCid}", gateway.Requests.Single().RequestUri!.ToString());
    }

    [Fact]
    public async Task Corrupted_download_is_detected_at_its_end()
    {
        var corrupted = (byte[])Blob.Clone();
        corrupted[123_456] ^= 1;
        using var gateway = new FakeGateway(_ => FakeGateway.Bytes(corrupted));
        using var client = gateway.Client();

        var error = await Assert.ThrowsAsync<CidMismatchException>(() => client.GetBlobAsync(BlobCid, Stream.Null));

        Assert.Equal(BlobCid, error.Expected);
        Assert.Equal(Cid.Compute(corrupted).Value, error.Actual);
    }

    [Fact]
    public async Task Truncated_download_is_detected()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Bytes(Blob[..^1]));
        using var client = gateway.Client();

        await Assert.ThrowsAsync<CidMismatchException>(() => client.GetBlobAsync(BlobCid, Stream.Null));
    }

    [Fact]
    public async Task Verifying_stream_hashes_in_passing_and_checks_once_at_the_end()
    {
        await using var stream = new CidVerifyingStream(new MemoryStream(Blob), Cid.Parse(BlobCid));
        var buffer = new byte[1000];
        Assert.Equal(0, await stream.ReadAsync(buffer.AsMemory(0, 0))); // an empty read is not the end
        while (await stream.ReadAsync(buffer) > 0)
        {
        }
        Assert.Equal(0, await stream.ReadAsync(buffer));
        Assert.Equal(Blob.Length, stream.BytesRead);
    }

    [Fact]
    public async Task Malformed_CID_is_refused_before_any_request()
    {
        using var gateway = new FakeGateway(_ => throw new InvalidOperationException("no request expected"));
        using var client = gateway.Client();

        await Assert.ThrowsAsync<FormatException>(() => client.GetBlobAsync("bafkreinotacid", Stream.Null));
        Assert.Empty(gateway.Requests);
    }

    [Fact]
    public async Task Error_answer_carries_the_problem()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.NotFound,
            """{"type":"urn:platform:problem:blob-not-found","title":"Blob not found","status":404,"detail":"nothing is pinned under it"}""",
            "application/problem+json"));
        using var client = gateway.Client();

        var error = await Assert.ThrowsAsync<PlatformApiException>(() => client.GetBlobAsync(BlobCid, Stream.Null));

        Assert.Equal(HttpStatusCode.NotFound, error.StatusCode);
        Assert.Equal("blob-not-found", error.Problem!.Slug);
        Assert.Equal("Blob not found: nothing is pinned under it", error.Message);
    }

    [Fact]
    public async Task Validation_problem_lists_its_errors()
    {
        using var gateway = new FakeGateway(_ => FakeGateway.Text(HttpStatusCode.BadRequest,
            """{"type":"urn:platform:problem:validation","title":"The request is not valid","status":400,"detail":"the job is not valid","errors":{"replicas":["replicas must be between 1 and 5"]}}""",
            "application/problem+json"));
        using var client = gateway.Client();

        var error = await Assert.ThrowsAsync<PlatformApiException>(() =>
            client.SubmitJobAsync(new SubmitJobRequest { Kernel = "matmul", Inputs = new Dictionary<string, string>(), Replicas = 9 }));

        Assert.Equal(["replicas must be between 1 and 5"], error.Problem!.Errors!["replicas"]);
        Assert.Contains("replicas: replicas must be between 1 and 5", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upload_is_streamed_with_its_length_and_progress()
    {
        byte[]? received = null;
        using var gateway = new FakeGateway(request =>
        {
            Assert.Equal(Blob.Length, request.Content!.Headers.ContentLength);
            received = request.Content.ReadAsByteArrayAsync().Result;
            return FakeGateway.Text(HttpStatusCode.Created, $$"""{"cid":"{{BlobCid}}","size":{{Blob.Length}},"sha256":"00"}""", "application/json");
        });
        using var client = gateway.Client();
        var reports = new List<long>();

        var pinned = await client.PutBlobAsync(new MemoryStream(Blob), new Inline(reports.Add));

        Assert.Equal(BlobCid, pinned.Cid);
        Assert.Equal(Blob, received);
        Assert.True(reports.Count > 1, "progress is reported as the body is sent");
        Assert.Equal(Blob.Length, reports[^1]);
    }

    [Fact]
    public async Task Cli_get_of_a_corrupted_blob_exits_3_and_leaves_no_file()
    {
        var corrupted = (byte[])Blob.Clone();
        corrupted[0] ^= 0xff;
        using var server = new OneAnswerServer(corrupted);
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            var target = Path.Combine(dir.FullName, "out.bin");
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = server.Url, ["PLATFORM_KEY"] = "pk_test", ["HOME"] = dir.FullName };

            var code = await Cli.RunAsync(["blobs", "get", BlobCid, "-o", target], CliHost.Plain(stdout, stderr, env));

            Assert.Equal(Cli.Corrupt, code);
            Assert.Contains($"not to the requested {BlobCid}", stderr.ToString(), StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(dir.FullName));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private sealed class Inline(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    /// <summary>A real HTTP server on a free port that answers every request with the same bytes.</summary>
    private sealed class OneAnswerServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _serving;

        public OneAnswerServer(byte[] body)
        {
            var port = Platform.Testing.FreePort.Next();
            Url = $"http://127.0.0.1:{port}/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _serving = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try
                    {
                        context = await _listener.GetContextAsync();
                    }
                    catch (HttpListenerException)
                    {
                        return; // stopped
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    context.Response.ContentLength64 = body.Length;
                    await context.Response.OutputStream.WriteAsync(body);
                    context.Response.Close();
                }
            });
        }

        public string Url { get; }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            _serving.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
