using System.Net;
using Platform.Contracts;

namespace Platform.Scheduler.Tests;

/// <summary>
/// Serves the test's blobs as the storage service's GET /v1/blobs/{cid} would (the whole blob with its length, which
/// storage may answer to a ranged request too), 404 for anything else, and fails like an unreachable storage while
/// <see cref="Down"/> is set.
/// </summary>
public sealed class StandInStorage
{
    private readonly Dictionary<Cid, byte[]> _blobs = [];
    private int _reads;
    private long _bytesServed;

    /// <summary>How many times the scheduler asked for a blob.</summary>
    public int Reads => Volatile.Read(ref _reads);

    /// <summary>How many body bytes the scheduler has read, when blobs are served in pieces (<see cref="Chunk"/> set).</summary>
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    /// <summary>While true, every request fails as a refused connection would.</summary>
    public bool Down { get; set; }

    /// <summary>The most bytes one read of a body returns, as a network delivers a body in pieces of any size.</summary>
    public int Chunk { get; init; } = int.MaxValue;

    public Cid Put(byte[] bytes)
    {
        var cid = Cid.Compute(bytes);
        lock (_blobs)
            _blobs[cid] = bytes;
        return cid;
    }

    /// <summary>The blob is gone from storage (lost on every node): a read answers 404.</summary>
    public void Remove(Cid cid)
    {
        lock (_blobs)
            _blobs.Remove(cid);
    }

    public HttpMessageHandler Handler() => new BlobsHandler(this);

    private HttpContent Body(byte[] bytes)
    {
        if (Chunk == int.MaxValue)
            return new ByteArrayContent(bytes);
        var content = new StreamContent(new Pieces(bytes, Chunk, this));
        content.Headers.ContentLength = bytes.Length;
        return content;
    }

    // Wraps the bytes rather than deriving from MemoryStream, whose methods call each other's overrides (a derived
    // ReadAsync would be counted twice).
    private sealed class Pieces(byte[] bytes, int chunk, StandInStorage storage) : Stream
    {
        private readonly MemoryStream _inner = new(bytes, writable: false);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => _inner.Length;

        public override long Position { get => _inner.Position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = _inner.Read(buffer[..Math.Min(buffer.Length, chunk)]);
            Interlocked.Add(ref storage._bytesServed, read);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class BlobsHandler(StandInStorage storage) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Interlocked.Increment(ref storage._reads);
            if (storage.Down)
                throw new HttpRequestException("Connection refused (stand-in storage is down)");
            var cid = request.RequestUri!.Segments[^1];
            byte[]? bytes = null;
            lock (storage._blobs)
            {
                if (Cid.TryParse(cid, out var parsed))
                    storage._blobs.TryGetValue(parsed, out bytes);
            }
            return Task.FromResult(bytes is not null
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = storage.Body(bytes) }
                : new HttpResponseMessage(HttpStatusCode.NotFound));
        }
    }
}
