using System.Buffers;
using System.Net;

namespace Platform.Client;

/// <summary>
/// A request body read from a stream as it is sent (never buffered whole), reporting the bytes sent so far.
/// The length is declared when the stream can tell it, so the server can refuse an oversized upload at once.
/// </summary>
internal sealed class ProgressStreamContent(Stream source, IProgress<long>? progress) : HttpContent
{
    private const int BufferSize = 81920;
    private readonly long _start = source.CanSeek ? source.Position : 0;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // The handler may send a body twice (after a lost connection); a seekable source starts over.
        if (source.CanSeek)
            source.Position = _start;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long sent = 0;
            int n;
            while ((n = await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken)) > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                sent += n;
                progress?.Report(sent);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = source.CanSeek ? source.Length - _start : 0;
        return source.CanSeek;
    }
}
