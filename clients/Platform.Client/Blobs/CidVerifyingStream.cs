using System.Security.Cryptography;
using Platform.Contracts;

namespace Platform.Client;

/// <summary>The bytes read did not hash to the CID they were asked for.</summary>
public sealed class CidMismatchException : IOException
{
    public CidMismatchException(string expected, string actual, long bytes)
        : base($"the {bytes} bytes received hash to {actual}, not to the requested {expected}: the download is corrupt")
    {
        Expected = expected;
        Actual = actual;
    }

    public CidMismatchException()
    {
    }

    public CidMismatchException(string message) : base(message)
    {
    }

    public CidMismatchException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public string? Expected { get; }

    public string? Actual { get; }
}

/// <summary>
/// Reads another stream through an incremental SHA-256 and, at its end, throws <see cref="CidMismatchException"/>
/// unless the bytes hash to <c>expected</c>. Nothing is buffered, so a blob of any size is checked in passing;
/// a reader must not trust the bytes until it has read to the end without an exception.
/// </summary>
public sealed class CidVerifyingStream(Stream inner, Cid expected, IProgress<long>? progress = null) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _read;
    private bool _verified;

    /// <summary>Bytes read so far.</summary>
    public long BytesRead => _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer);
        return Account(buffer[..n], buffer.Length);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken);
        return Account(buffer.Span[..n], buffer.Length);
    }

    private int Account(ReadOnlySpan<byte> bytes, int requested)
    {
        if (bytes.Length > 0)
        {
            _hash.AppendData(bytes);
            _read += bytes.Length;
            progress?.Report(_read);
        }
        // A zero-byte read into an empty buffer says nothing about the end of the stream.
        else if (!_verified && requested > 0)
        {
            _verified = true;
            var actual = Cid.FromSha256(_hash.GetHashAndReset());
            if (actual != expected)
                throw new CidMismatchException(expected.Value, actual.Value, _read);
        }
        return bytes.Length;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
