using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Storage.Blobs;

namespace Platform.Storage.Tests.Blobs;

public sealed class BlobStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "platform-blobstore-" + Guid.NewGuid().ToString("n"));
    private readonly BlobStore _store;

    public BlobStoreTests() => _store = NewStore();

    private BlobStore NewStore() => new(Options.Create(new StorageOptions { RootPath = _root }), NullLogger<BlobStore>.Instance);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string TempFolder => Path.Combine(_root, "tmp");

    private string BlobPath(Cid cid) => Path.Combine(_root, "blobs", cid.Value[^2..], cid.Value);

    [Fact]
    public async Task Stored_blob_is_addressed_by_the_cid_of_its_bytes()
    {
        var bytes = "hello"u8.ToArray();

        var blob = await _store.PutAsync(new MemoryStream(bytes), 1 << 20, CancellationToken.None);

        Assert.Equal(Cid.Compute(bytes), blob.Cid);
        Assert.Equal(5, blob.Size);
        Assert.Equal(blob.Cid.Sha256Hex, blob.Sha256);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(BlobPath(blob.Cid)));
    }

    [Fact]
    public async Task Empty_blob_has_the_design_cid()
    {
        var blob = await _store.PutAsync(new MemoryStream(), 10, CancellationToken.None);

        Assert.Equal("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", blob.Cid.Value);
    }

    [Fact]
    public async Task Concurrent_uploads_of_the_same_bytes_give_one_blob_and_no_temp_files()
    {
        var bytes = new byte[3 << 20];
        new Random(11).NextBytes(bytes);

        var blobs = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => _store.PutAsync(new MemoryStream(bytes), 1 << 30, CancellationToken.None))));

        Assert.Single(blobs.Select(b => b.Cid).Distinct());
        Assert.Equal(bytes, await File.ReadAllBytesAsync(BlobPath(blobs[0].Cid)));
        Assert.Empty(Directory.EnumerateFiles(TempFolder));
    }

    [Fact]
    public async Task Oversized_upload_is_refused_and_leaves_nothing_behind()
    {
        await Assert.ThrowsAsync<BlobTooLargeException>(() => _store.PutAsync(new MemoryStream(new byte[5000]), 4096, CancellationToken.None));

        Assert.Empty(Directory.EnumerateFiles(TempFolder));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_root, "blobs"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Upload_cut_mid_stream_pins_nothing_and_leaves_no_temp_file()
    {
        await Assert.ThrowsAsync<IOException>(() => _store.PutAsync(new FailingStream(bytesBeforeFailure: 100_000), 1 << 30, CancellationToken.None));

        Assert.Empty(Directory.EnumerateFiles(TempFolder));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_root, "blobs"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Corrupted_bytes_on_disk_are_never_served()
    {
        var blob = await _store.PutAsync(new MemoryStream("precious"u8.ToArray()), 1 << 20, CancellationToken.None);
        await File.WriteAllBytesAsync(BlobPath(blob.Cid), "tampered"u8.ToArray());

        await Assert.ThrowsAsync<CorruptBlobException>(() => _store.OpenVerifiedAsync(blob.Cid, CancellationToken.None));
    }

    [Fact]
    public async Task Verified_read_returns_the_bytes_from_the_start()
    {
        var blob = await _store.PutAsync(new MemoryStream("precious"u8.ToArray()), 1 << 20, CancellationToken.None);

        await using var stream = await _store.OpenVerifiedAsync(blob.Cid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);

        Assert.Equal("precious"u8.ToArray(), copy.ToArray());
    }

    [Fact]
    public async Task Unknown_cid_reads_as_absent()
    {
        Assert.Null(await _store.OpenVerifiedAsync(Cid.Compute("never stored"u8), CancellationToken.None));
    }

    [Fact]
    public async Task Temp_files_left_by_a_crash_are_removed_on_start()
    {
        await File.WriteAllTextAsync(Path.Combine(TempFolder, "half-written"), "partial");

        _ = NewStore();

        Assert.Empty(Directory.EnumerateFiles(TempFolder));
    }

    /// <summary>A request body whose connection drops after some bytes.</summary>
    private sealed class FailingStream(int bytesBeforeFailure) : Stream
    {
        private int _sent;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _sent; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_sent >= bytesBeforeFailure)
                throw new IOException("connection reset by peer");
            var n = Math.Min(count, Math.Min(8192, bytesBeforeFailure - _sent));
            Array.Fill(buffer, (byte)0xAB, offset, n);
            _sent += n;
            return n;
        }
    }
}
