using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Storage.Blobs;

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
}
