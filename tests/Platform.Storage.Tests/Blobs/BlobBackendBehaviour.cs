using Platform.Contracts;
using Platform.Storage.Blobs;

namespace Platform.Storage.Tests.Blobs;

/// <summary>
/// What every <see cref="IBlobBackend"/> must do, whatever it keeps copies on. Each backend gets a subclass
/// that says how to make one and how to damage a copy behind its back.
/// </summary>
public abstract class BlobBackendBehaviour : IAsyncLifetime
{
    private static readonly byte[] Hello = "hello, content-addressed world"u8.ToArray();

    private IBlobBackend? _backend;

    /// <summary>A fresh folder per test; StorageOptions.RootPath for backends that want one. Source files are made here.</summary>
    protected string Root { get; } = Path.Combine(Path.GetTempPath(), "platform-backend-" + Guid.NewGuid().ToString("n"));

    protected IBlobBackend Backend => _backend ?? throw new InvalidOperationException("InitializeAsync has not run");

    /// <summary>A backend that holds no copies yet.</summary>
    protected abstract Task<IBlobBackend> CreateBackendAsync();

    /// <summary>Replaces the backend's copy of <paramref name="cid"/> with <paramref name="bytes"/>, as a failing disk or a stray write would.</summary>
    protected abstract Task DamageAsync(Cid cid, byte[] bytes);

    public async Task InitializeAsync()
    {
        // Under the root, as the filesystem backend needs: it renames sources into place.
        Directory.CreateDirectory(Path.Combine(Root, "tmp"));
        _backend = await CreateBackendAsync();
    }

    public Task DisposeAsync()
    {
        (_backend as IDisposable)?.Dispose();
        Directory.Delete(Root, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Stored_copy_reads_back_exactly()
    {
        var (cid, _) = await StoreAsync(Hello);

        Assert.Equal(Hello, await ReadAsync(cid, 0, Hello.Length));
        Assert.Equal(Hello.Length, await Backend.SizeAsync(cid, CancellationToken.None));
    }

    [Fact]
    public async Task Store_takes_the_source_file()
    {
        var (_, source) = await StoreAsync(Hello);

        Assert.False(File.Exists(source));
    }

    [Theory]
    [InlineData(0, 5, "hello")]
    [InlineData(7, 7, "content")]
    [InlineData(25, 5, "world")]
    [InlineData(25, 100, "world")]
    [InlineData(3, 0, "")]
    [InlineData(30, 4, "")]
    [InlineData(1000, 4, "")]
    public async Task Ranges_read_only_what_was_asked_and_end_at_the_copy(long offset, long length, string expected)
    {
        var (cid, _) = await StoreAsync(Hello);

        Assert.Equal(expected, System.Text.Encoding.UTF8.GetString(await ReadAsync(cid, offset, length)));
    }

    [Fact]
    public async Task Absent_copy_has_no_size_and_no_stream()
    {
        var absent = Cid.Compute("never stored"u8);
        await StoreAsync(Hello);

        Assert.Null(await Backend.SizeAsync(absent, CancellationToken.None));
        Assert.Null(await Backend.OpenReadAsync(absent, 0, 10, CancellationToken.None));
        Assert.Null(await Backend.OpenReadAsync(absent, 0, 0, CancellationToken.None));
    }

    [Fact]
    public async Task Empty_blob_is_present_with_size_zero()
    {
        var (cid, _) = await StoreAsync([]);

        Assert.Equal(0, await Backend.SizeAsync(cid, CancellationToken.None));
        Assert.Empty(await ReadAsync(cid, 0, 10));
    }

    [Fact]
    public async Task Storing_again_without_overwrite_keeps_the_first_copy_and_takes_the_source()
    {
        var (cid, _) = await StoreAsync(Hello);

        // Other bytes under the same CID show which copy survived.
        var (_, second) = await StoreAsync("something else"u8.ToArray(), cid, overwrite: false);

        Assert.False(File.Exists(second));
        Assert.Equal(Hello, await ReadAsync(cid, 0, 1000));
    }

    [Fact]
    public async Task Overwrite_repairs_a_damaged_copy()
    {
        var (cid, _) = await StoreAsync(Hello);
        await DamageAsync(cid, "hello, damaged"u8.ToArray());

        var (_, source) = await StoreAsync(Hello, cid, overwrite: true);

        Assert.False(File.Exists(source));
        Assert.Equal(Hello, await ReadAsync(cid, 0, 1000));
        Assert.Equal(Hello.Length, await Backend.SizeAsync(cid, CancellationToken.None));
    }

    [Fact]
    public async Task List_gives_exactly_the_stored_cids()
    {
        Assert.Empty(await ListAsync());
        var stored = new List<Cid>();
        for (var i = 0; i < 5; i++)
            stored.Add((await StoreAsync(System.Text.Encoding.UTF8.GetBytes($"blob {i}"))).Cid);

        Assert.Equal(stored.Select(c => c.Value).Order(StringComparer.Ordinal), (await ListAsync()).Select(c => c.Value).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Large_random_blob_round_trips()
    {
        var bytes = RandomBytes(3 << 20, seed: 7);
        var (cid, _) = await StoreAsync(bytes);

        Assert.Equal(bytes.Length, await Backend.SizeAsync(cid, CancellationToken.None));
        Assert.Equal(bytes, await ReadAsync(cid, 0, bytes.Length));
        Assert.Equal(bytes.AsSpan(1_000_000, 1 << 20).ToArray(), await ReadAsync(cid, 1_000_000, 1 << 20));
    }

    [Fact]
    public async Task Concurrent_stores_of_the_same_cid_leave_one_whole_copy()
    {
        var bytes = RandomBytes(1 << 20, seed: 13);
        var cid = Cid.Compute(bytes);
        var sources = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => WriteSourceAsync(bytes)));

        await Task.WhenAll(sources.Select(source => Task.Run(() => Backend.StoreAsync(cid, source, overwrite: false, CancellationToken.None))));

        Assert.All(sources, source => Assert.False(File.Exists(source)));
        Assert.Equal([cid], await ListAsync());
        Assert.Equal(bytes, await ReadAsync(cid, 0, bytes.Length));
    }

    protected static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A complete source file under <see cref="Root"/>, as BlobStore hands to a backend.</summary>
    protected async Task<string> WriteSourceAsync(byte[] bytes)
    {
        var source = Path.Combine(Root, "tmp", Guid.NewGuid().ToString("n"));
        await File.WriteAllBytesAsync(source, bytes);
        return source;
    }

    protected Task<(Cid Cid, string Source)> StoreAsync(byte[] bytes) => StoreAsync(bytes, Cid.Compute(bytes), overwrite: false);

    protected async Task<(Cid Cid, string Source)> StoreAsync(byte[] bytes, Cid cid, bool overwrite)
    {
        var source = await WriteSourceAsync(bytes);
        await Backend.StoreAsync(cid, source, overwrite, CancellationToken.None);
        return (cid, source);
    }

    /// <summary>What a caller of OpenReadAsync gets: at most <paramref name="length"/> bytes from the stream.</summary>
    protected async Task<byte[]> ReadAsync(Cid cid, long offset, long length)
    {
        await using var stream = await Backend.OpenReadAsync(cid, offset, length, CancellationToken.None);
        Assert.NotNull(stream);
        using var copy = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while (copy.Length < length
               && (read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - copy.Length)))) > 0)
        {
            copy.Write(buffer, 0, read);
        }
        return copy.ToArray();
    }

    protected async Task<List<Cid>> ListAsync()
    {
        var cids = new List<Cid>();
        await foreach (var cid in Backend.ListAsync(CancellationToken.None))
            cids.Add(cid);
        return cids;
    }
}
