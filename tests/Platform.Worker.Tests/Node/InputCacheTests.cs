using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Worker.Node;

namespace Platform.Worker.Tests.Node;

public sealed class InputCacheTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("platform-inputs-").FullName;
    private readonly BlobServer _server = new();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private InputCache Cache(long capacity = 1 << 20)
    {
        var options = Options.Create(new WorkerOptions { NodeKey = "k", InputCacheDirectory = _directory, InputCacheBytes = capacity });
        return new(new GatewayClient(new HttpClient(_server) { BaseAddress = new Uri("http://gateway.test/") }, options, NullLogger<GatewayClient>.Instance),
            options, NullLogger<InputCache>.Instance);
    }

    private Cid Serve(int size, byte fill)
    {
        var bytes = Enumerable.Repeat(fill, size).ToArray();
        var cid = Cid.Compute(bytes);
        _server.Blobs[cid.Value] = bytes;
        return cid;
    }

    [Fact]
    public async Task An_input_is_downloaded_once_verified_and_then_served_from_disk()
    {
        var cid = Serve(1000, 7);
        var cache = Cache();

        var first = await cache.GetAsync(cid, 10_000, CancellationToken.None);
        var second = await cache.GetAsync(cid, 10_000, CancellationToken.None);

        Assert.Null(first.FailureReason);
        Assert.Equal(first.Path, second.Path);
        Assert.Equal(cid, Cid.Compute(File.ReadAllBytes(second.Path!)));
        Assert.Equal(1, _server.Requests);
    }

    [Fact]
    public async Task An_input_larger_than_the_limit_is_refused_before_its_body_is_read()
    {
        var cid = Serve(64 << 20, 1);
        var cache = Cache();

        var result = await cache.GetAsync(cid, 1 << 20, CancellationToken.None);

        Assert.Equal("input_too_large", result.FailureReason);
        Assert.Contains("at most 1,048,576 bytes", result.FailureDetail);
        Assert.Equal(0, _server.BodyBytesRead);
        Assert.Empty(Directory.EnumerateFiles(_directory));
    }

    [Fact]
    public async Task An_input_that_does_not_announce_its_size_is_cut_off_at_the_limit()
    {
        var cid = Serve(8 << 20, 1);
        _server.AnnounceLength = false;
        var cache = Cache();

        var result = await cache.GetAsync(cid, 1 << 20, CancellationToken.None);

        Assert.Equal("input_too_large", result.FailureReason);
        Assert.InRange(_server.BodyBytesRead, 1, 2 << 20);
        Assert.Empty(Directory.EnumerateFiles(_directory));
    }

    [Theory]
    [InlineData(5000)]
    [InlineData(InputCache.SmallInputBytes + 1)]
    public async Task A_corrupted_cache_entry_is_detected_and_fetched_again(int size)
    {
        var cid = Serve(size, 3);
        var path = (await Cache().GetAsync(cid, 1 << 20, CancellationToken.None)).Path!;
        var bytes = File.ReadAllBytes(path);
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(path, bytes);

        // The node restarted: what it held in memory is gone, the file on disk is all there is.
        var again = await Cache().GetAsync(cid, 1 << 20, CancellationToken.None);

        Assert.Equal(cid, Cid.Compute(File.ReadAllBytes(again.Path!)));
        using (var read = again.Open())
        using (var copy = new MemoryStream())
        {
            read.CopyTo(copy);
            Assert.Equal(cid, Cid.Compute(copy.ToArray()));
        }
        Assert.Equal(2, _server.Requests);
    }

    [Fact]
    public async Task A_small_input_is_kept_in_memory_verified_and_a_large_one_is_re_hashed_from_disk_every_time()
    {
        Cid small = Serve(InputCache.SmallInputBytes, 4), large = Serve(InputCache.SmallInputBytes + 1, 5);
        var cache = Cache();
        var first = await cache.GetAsync(small, 1 << 20, CancellationToken.None);
        Assert.NotNull(first.Data);
        Assert.Null((await cache.GetAsync(large, 1 << 20, CancellationToken.None)).Data);
        foreach (var cid in new[] { small, large })
        {
            var path = Path.Combine(_directory, cid.Value);
            var bytes = File.ReadAllBytes(path);
            bytes[100] ^= 0xFF;
            File.WriteAllBytes(path, bytes);
        }

        // The small input comes from memory, as verified when it was fetched; the large one's flipped byte is found.
        var smallAgain = await cache.GetAsync(small, 1 << 20, CancellationToken.None);
        var largeAgain = await cache.GetAsync(large, 1 << 20, CancellationToken.None);

        Assert.Same(first.Data, smallAgain.Data);
        Assert.Equal(small, Cid.Compute(smallAgain.Data!));
        Assert.Equal(large, Cid.Compute(File.ReadAllBytes(largeAgain.Path!)));
        Assert.Equal(3, _server.Requests);
        // The limit still applies to an input held in memory.
        Assert.Equal("input_too_large", (await cache.GetAsync(small, 1000, CancellationToken.None)).FailureReason);
    }

    [Fact]
    public async Task Bytes_that_do_not_match_the_CID_are_refused_and_not_kept()
    {
        var cid = Serve(100, 1);
        _server.Blobs[cid.Value] = Enumerable.Repeat((byte)2, 100).ToArray();

        var result = await Cache().GetAsync(cid, 10_000, CancellationToken.None);

        Assert.Equal("input_corrupt", result.FailureReason);
        Assert.Empty(Directory.EnumerateFiles(_directory));
    }

    [Fact]
    public async Task The_least_recently_used_inputs_are_evicted_beyond_the_capacity()
    {
        var cache = Cache(capacity: 2500);
        Cid a = Serve(1000, 1), b = Serve(1000, 2), c = Serve(1000, 3);
        await cache.GetAsync(a, 10_000, CancellationToken.None);
        await cache.GetAsync(b, 10_000, CancellationToken.None);
        await cache.GetAsync(a, 10_000, CancellationToken.None);

        await cache.GetAsync(c, 10_000, CancellationToken.None);

        Assert.Equal(new[] { a.Value, c.Value }.Order(), Directory.EnumerateFiles(_directory).Select(Path.GetFileName).Order());
        Assert.Equal(2000, cache.CachedBytes);
    }

    [Fact]
    public async Task A_missing_blob_is_reported_as_missing()
    {
        var result = await Cache().GetAsync(Cid.Compute([9, 9]), 10_000, CancellationToken.None);

        Assert.Equal("input_missing", result.FailureReason);
    }

    /// <summary>Stands in for the gateway's GET /v1/blobs/{cid}, counting what the cache actually reads.</summary>
    private sealed class BlobServer : HttpMessageHandler
    {
        private long _bodyBytesRead;

        public Dictionary<string, byte[]> Blobs { get; } = [];
        public int Requests { get; private set; }
        public bool AnnounceLength { get; set; } = true;
        public long BodyBytesRead => Interlocked.Read(ref _bodyBytesRead);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            var cid = request.RequestUri!.Segments[^1];
            if (!Blobs.TryGetValue(cid, out var bytes))
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));
            var content = new StreamContent(new CountingStream(bytes, n => Interlocked.Add(ref _bodyBytesRead, n)));
            if (AnnounceLength)
                content.Headers.ContentLength = bytes.Length;
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = content });
        }
    }

    private sealed class CountingStream(byte[] bytes, Action<int> counted) : MemoryStream(bytes, writable: false)
    {
        // Not seekable, so HttpClient cannot work out a Content-Length the test did not announce.
        public override bool CanSeek => false;

        public override int Read(byte[] buffer, int offset, int count) => Counted(base.Read(buffer, offset, count));

        // MemoryStream.Read(Span) of a derived type goes through this overload, so counting here counts every read once.
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer, offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        private int Counted(int read)
        {
            counted(read);
            return read;
        }
    }
}
