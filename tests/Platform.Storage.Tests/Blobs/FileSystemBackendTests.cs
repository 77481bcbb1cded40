using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Storage.Blobs;
using Platform.Testing;

namespace Platform.Storage.Tests.Blobs;

public sealed class FileSystemBackendTests : BlobBackendBehaviour
{
    private FileSystemBackend? _backend;

    protected override Task<IBlobBackend> CreateBackendAsync()
    {
        _backend = new FileSystemBackend(Options.Create(new StorageOptions { RootPath = Root }));
        return Task.FromResult<IBlobBackend>(_backend);
    }

    protected override Task DamageAsync(Cid cid, byte[] bytes) => File.WriteAllBytesAsync(_backend!.PathOf(cid), bytes);

    private string TempFolder => Path.Combine(Root, "tmp");

    [Fact]
    public async Task Replacing_a_copy_sets_the_old_one_aside_under_a_second_name_before_the_rename()
    {
        var hello = "hello"u8.ToArray();
        var damaged = "damaged bytes"u8.ToArray();
        var (cid, _) = await StoreAsync(damaged, Cid.Compute(hello), overwrite: false);
        string? setAside = null;
        _backend!.DeleteReplaced = path => setAside = path;

        await StoreAsync(hello, cid, overwrite: true);

        Assert.Equal(hello, await File.ReadAllBytesAsync(_backend.PathOf(cid)));
        Assert.NotNull(setAside);
        Assert.Equal(TempFolder, Path.GetDirectoryName(setAside));
        Assert.Equal(damaged, await File.ReadAllBytesAsync(setAside));
        Assert.Null(_backend.KeepAside(_backend.PathOf(Cid.Compute("never stored"u8))));
    }

    [Fact]
    public async Task Replacing_a_copy_leaves_the_new_bytes_in_place_and_the_old_copy_deleted_soon_after()
    {
        var hello = "hello"u8.ToArray();
        var (cid, _) = await StoreAsync("damaged bytes"u8.ToArray(), Cid.Compute(hello), overwrite: false);
        // A reader that opened the old copy keeps reading it whole: the copy is replaced, never changed in place.
        await using var reader = File.OpenRead(_backend!.PathOf(cid));

        await StoreAsync(hello, cid, overwrite: true);

        Assert.Equal(hello, await File.ReadAllBytesAsync(_backend.PathOf(cid)));
        Assert.Equal("damaged bytes", await new StreamReader(reader).ReadToEndAsync());
        await Eventually.UntilAsync(() => Task.FromResult(!Directory.EnumerateFiles(TempFolder).Any()), TimeSpan.FromSeconds(10),
            "the replaced copy's second name to be deleted");
    }
}
