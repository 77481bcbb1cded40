using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Platform.Contracts;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>A network whose storage takes blobs larger than the default 1 GiB.</summary>
public sealed class LargeBlobNetwork : Network
{
    protected override bool StartsWorker => false;

    protected override Dictionary<string, string?> StorageSettings => new() { ["Storage__MaxBlobBytes"] = (3L << 30).ToString(CultureInfo.InvariantCulture) };
}

/// <summary>
/// The gateway streams uploads: its memory does not grow with the size of what passes through it. The growth is
/// the gateway's peak resident memory during the upload above what it held just before: the peak (VmHWM) is reset
/// to the current resident size by writing 5 to /proc/PID/clear_refs, so what the gateway used before the upload
/// (start-up, other requests) does not count, and only the upload's own growth is bounded.
/// </summary>
public sealed class LargeUploadTests(LargeBlobNetwork network, ITestOutputHelper output) : IClassFixture<LargeBlobNetwork>
{
    private const long Size = 2L << 30;
    private const long GrowthLimitBytes = 64L * 1000 * 1000;

    /// <summary>2 GiB made of a seeded 1 MiB block, each copy stamped with its index, generated while it is sent.</summary>
    private sealed class GeneratedStream(long length, int seed) : Stream
    {
        private readonly byte[] _block = SeededBlock(seed);
        private long _position;

        private static byte[] SeededBlock(int seed)
        {
            var block = new byte[1 << 20];
            new Random(seed).NextBytes(block);
            return block;
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var inBlock = (int)(_position & ((1 << 20) - 1));
            var n = (int)Math.Min(Math.Min(count, length - _position), _block.Length - inBlock);
            _block.AsSpan(inBlock, n).CopyTo(buffer.AsSpan(offset, n));
            // The block index in its first 8 bytes, so no two MiB of the blob are equal.
            Span<byte> index = stackalloc byte[8];
            BitConverter.TryWriteBytes(index, _position >> 20);
            for (var i = inBlock; i < 8 && i < inBlock + n; i++)
                buffer[offset + i - inBlock] = index[i];
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static long StatusBytes(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Resets the process's peak resident size (VmHWM) to its current one (Linux 4.0+); returns that size.</summary>
    private static long ResetPeak(int pid)
    {
        File.WriteAllText($"/proc/{pid}/clear_refs", "5");
        var resident = StatusBytes(pid, "VmRSS");
        var peak = StatusBytes(pid, "VmHWM");
        // The reset is what makes the measurement the upload's own: prove it happened rather than trust it.
        Assert.True(peak <= resident + (4L << 20), $"VmHWM {peak:N0} was not reset to VmRSS {resident:N0}");
        return peak;
    }

    [Fact]
    public async Task A_2_GiB_upload_through_the_gateway_grows_its_memory_by_less_than_64_MB()
    {
        const int seed = 20;
        output.WriteLine($"seed {seed}");
        string expected;
        using (var sha = SHA256.Create())
        await using (var content = new GeneratedStream(Size, seed))
        {
            expected = Cid.FromSha256(await sha.ComputeHashAsync(content)).Value;
        }

        // The operator pins for free, so the test needs no credits for 2 GiB.
        using var http = network.Client(network.Operator.Key);
        http.Timeout = TimeSpan.FromMinutes(10);
        var gateway = network.Gateway.ProcessId;
        output.WriteLine($"gateway lifetime peak RSS before the upload: {StatusBytes(gateway, "VmHWM") / 1e6:F1} MB");
        var before = ResetPeak(gateway);
        using var body = new StreamContent(new GeneratedStream(Size, seed), 1 << 16);
        body.Headers.ContentLength = Size;
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), body);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var pinned = (await response.Content.ReadFromJsonAsync<Pinned>(Api.Json))!;
        Assert.Equal(Size, pinned.Size);
        Assert.Equal(expected, pinned.Cid);
        var growth = StatusBytes(gateway, "VmHWM") - before;
        output.WriteLine($"gateway RSS {before / 1e6:F1} MB before a {Size:N0}-byte upload; its peak during the upload was {growth / 1e6:F1} MB higher");
        Assert.True(growth < GrowthLimitBytes, $"the gateway's resident memory grew by {growth / 1e6:F1} MB during the upload");
    }
}
