using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Storage.Blobs;
using Platform.Testing;

namespace Platform.Storage.Tests.Blobs;

public sealed class S3BackendTests : BlobBackendBehaviour
{
    // One bucket per test class, created by the first backend that uses it; each test is its own node (key
    // prefix), as several storage nodes sharing a bucket are.
    private static readonly string Bucket = "platform-test-" + Guid.NewGuid().ToString("n")[..16];

    private readonly string _nodeId = NewNodeId();
    private MotoServer? _moto;
    private S3Backend? _backend;

    protected override async Task<IBlobBackend> CreateBackendAsync()
    {
        _moto = await MotoServer.GetAsync();
        _backend = NewBackend(Bucket, _nodeId);
        return _backend;
    }

    protected override async Task DamageAsync(Cid cid, byte[] bytes)
    {
        using var client = NewClient();
        await client.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = _backend!.KeyOf(cid), InputStream = new MemoryStream(bytes) });
    }

    [Fact]
    public async Task Copies_are_kept_under_the_node_id()
    {
        var (cid, _) = await StoreAsync("mine"u8.ToArray());

        Assert.Equal($"{_nodeId}/{cid}", _backend!.KeyOf(cid));
    }

    [Fact]
    public async Task Nodes_sharing_a_bucket_keep_their_own_copies()
    {
        var (cid, _) = await StoreAsync("shared bytes"u8.ToArray());
        using var other = NewBackend(Bucket, NewNodeId());

        Assert.Null(await other.SizeAsync(cid, CancellationToken.None));
        Assert.Empty(await ToListAsync(other.ListAsync(CancellationToken.None)));
    }

    [Fact]
    public async Task Keys_under_the_prefix_that_are_not_cids_are_not_listed()
    {
        var (cid, _) = await StoreAsync("real"u8.ToArray());
        using var client = NewClient();
        await client.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = _backend!.KeyOf(cid) + ".bak", ContentBody = "x" });
        await client.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = _backend.KeyOf(cid).Replace("/", "/sub/", StringComparison.Ordinal), ContentBody = "x" });

        Assert.Equal([cid], await ListAsync());
    }

    [Fact]
    public async Task Nodes_racing_to_create_a_missing_bucket_both_succeed()
    {
        var bucket = "platform-race-" + Guid.NewGuid().ToString("n")[..16];
        var bytes = "first of the day"u8.ToArray();
        var cid = Cid.Compute(bytes);
        var backends = Enumerable.Range(0, 4).Select(_ => NewBackend(bucket, NewNodeId())).ToList();
        try
        {
            var sources = await Task.WhenAll(backends.Select(_ => WriteSourceAsync(bytes)));

            await Task.WhenAll(backends.Select((backend, i) => Task.Run(() => backend.StoreAsync(cid, sources[i], overwrite: false, CancellationToken.None))));

            foreach (var backend in backends)
                Assert.Equal(bytes.Length, await backend.SizeAsync(cid, CancellationToken.None));
        }
        finally
        {
            backends.ForEach(backend => backend.Dispose());
        }
    }

    [Fact]
    public async Task Blob_above_the_multipart_threshold_round_trips()
    {
        // TransferUtility uploads files of 16 MiB and more in parts.
        var bytes = RandomBytes(17 << 20, seed: 23);
        var (cid, _) = await StoreAsync(bytes);

        Assert.Equal(bytes.Length, await Backend.SizeAsync(cid, CancellationToken.None));
        Assert.Equal(bytes, await ReadAsync(cid, 0, bytes.Length));
    }

    private static string NewNodeId() => "node-" + Guid.NewGuid().ToString("n")[..8];

    private S3Backend NewBackend(string bucket, string nodeId) => new(
        Options.Create(new S3Options
        {
            ServiceUrl = _moto!.ServiceUrl,
            Bucket = bucket,
            AccessKey = MotoServer.AccessKey,
            SecretKey = MotoServer.SecretKey,
            Region = MotoServer.Region,
            // A failure shows at once instead of after the SDK's backed-off retries.
            MaxErrorRetry = 0,
        }),
        Options.Create(new StorageOptions { RootPath = Root, NodeId = nodeId }));

    private AmazonS3Client NewClient() => new(
        new BasicAWSCredentials(MotoServer.AccessKey, MotoServer.SecretKey),
        new AmazonS3Config { ServiceURL = _moto!.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = MotoServer.Region, MaxErrorRetry = 0 });

    private static async Task<List<Cid>> ToListAsync(IAsyncEnumerable<Cid> cids)
    {
        var list = new List<Cid>();
        await foreach (var cid in cids)
            list.Add(cid);
        return list;
    }
}
